"""Pictures the ML tests draw for themselves, so no test needs the shared data set."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def draw_phone_like(rng: random.Random, size: int = 96) -> Image.Image:
    """A dark rounded slab with a bright screen on a light, plain background."""
    image = Image.new("RGB", (size, size), (235 + rng.randint(0, 20), 235, 235))
    draw = ImageDraw.Draw(image)
    w, h = rng.randint(size // 4, size // 3), rng.randint(size // 2, int(size * 0.7))
    x, y = rng.randint(4, size - w - 4), rng.randint(4, size - h - 4)
    draw.rounded_rectangle((x, y, x + w, y + h), radius=w // 5, fill=(20, 20, 25))
    draw.rectangle((x + 3, y + 6, x + w - 3, y + h - 8), fill=(60 + rng.randint(0, 60), 140, 230))
    return image


def draw_not_phone(rng: random.Random, size: int = 96) -> Image.Image:
    """Green-brown noise with a few yellow discs: nothing like a phone."""
    # Noise from the caller's seeded generator (Pillow's effect_noise is unseeded: every call differed).
    noise = np.random.default_rng(rng.getrandbits(32)).normal(128, 40, (size, size))
    image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8), "L").convert("RGB")
    image = Image.blend(image, Image.new("RGB", (size, size), (60, 140 + rng.randint(0, 40), 50)), 0.6)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        cx, cy, r = rng.randint(0, size), rng.randint(0, size), rng.randint(6, 16)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(230, 200, 40))
    return image


def write_tiny_dataset(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """``root/phone`` and ``root/not_phone`` with ``per_class`` drawn JPEGs each."""
    rng = random.Random(seed)
    for label, draw in (("phone", draw_phone_like), ("not_phone", draw_not_phone)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            draw(rng).save(root / label / f"{label}_{index:03d}.jpg", quality=90)
    return root


def draw_scene(rng: random.Random, size: int = 128) -> Image.Image:
    """Random large shapes on a coloured background: a distinct, photo-like picture per call (no pixel noise)."""
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.randint(-size // 4, size), rng.randint(-size // 4, size)
        x1, y1 = x0 + rng.randint(size // 6, size // 2), y0 + rng.randint(size // 6, size // 2)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return image


def drawn_pictures(seed: int = 0) -> list[Image.Image]:
    """Four drawn pictures of different sizes and aspect ratios, phone-like and not (torch-free, for any process)."""
    rng = random.Random(seed)
    sizes = [(320, 240), (200, 300), (224, 224), (640, 480)]
    pictures = []
    for index, (width, height) in enumerate(sizes):
        square = (draw_phone_like if index % 2 else draw_not_phone)(rng, max(width, height))
        pictures.append(square.resize((width, height)))
    return pictures


def draw_scene_phone(
    rng: random.Random, *, size: int = 224, phone: bool = True
) -> tuple[Image.Image, tuple[float, float, float, float] | None]:
    """A busy drawn scene with, when ``phone``, one small phone (dark slab, lit screen) at a random spot.

    Returns the picture and the phone's box (normalised x1, y1, x2, y2), or None. Without a phone, a light
    rectangle of the same size stands where a phone could be, so "small rectangle" alone is not the answer.
    """
    image = draw_scene(rng, size)
    draw = ImageDraw.Draw(image)
    w, h = rng.randint(size // 12, size // 8), rng.randint(size // 7, size // 5)
    x, y = rng.randint(2, size - w - 2), rng.randint(2, size - h - 2)
    if not phone:
        draw.rectangle((x, y, x + w, y + h), fill=(240, 240, 200))
        return image, None
    draw.rounded_rectangle((x, y, x + w, y + h), radius=max(1, w // 5), fill=(15, 15, 20))
    draw.rectangle((x + 2, y + 3, x + w - 2, y + h - 4), fill=(80 + rng.randint(0, 40), 170, 250))
    return image, (x / size, y / size, (x + w) / size, (y + h) / size)


def write_scene_dataset(root: Path, *, per_label: int = 24, seed: int = 0, size: int = 224) -> Path:
    """A ``phone-scenes``-style folder: JPEGs and a manifest.csv with groups and phone boxes."""
    rng = random.Random(seed)
    rows = ["file,label,source,group,phone_boxes"]
    for label in ("phone", "not_phone"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_label):
            picture, box = draw_scene_phone(rng, size=size, phone=label == "phone")
            name = f"{label}/{label}_{index:03d}.jpg"
            picture.save(root / name, quality=92)
            boxes = "" if box is None else " ".join(f"{value:.4f}" for value in box)
            rows.append(f"{name},{label},drawn-{label},{label}-{index},{boxes}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root
