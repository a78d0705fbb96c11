"""The one place that draws pictures: the export's parity probe, the tests' and the benchmarks' pictures.

No test, benchmark or export check needs a file from outside the repository, so each draws what it needs here.
It lives in ``inference`` because the ONNX export checks itself on :func:`probe_pictures` and ``inference`` is the
bottom layer (it may import nothing above it; tests and benchmarks may import it). Pillow and NumPy only, no
torch. Every drawing is a pure function of its arguments and, where it takes one, of the caller's seeded ``rng``:
the same call gives the same pixels. An edit here does not change the export cache key: the probe checks an
export, it does not shape the graph.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Colour = tuple[int, int, int]
# A normalised (x1, y1, x2, y2) box, as the scene manifests store phones.
NormalisedBox = tuple[float, float, float, float]


def probe_pictures() -> list[Image.Image]:
    """Two drawn pictures (landscape and portrait) with edges and flat areas, for checking an export."""
    pictures = []
    for width, height, hue in ((320, 240, 40), (200, 300, 160)):
        image = Image.new("RGB", (width, height), (hue, 120, 255 - hue))
        draw = ImageDraw.Draw(image)
        draw.rectangle([width // 5, height // 6, width // 2, height * 5 // 6], fill=(20, 20, 24))
        draw.ellipse([width // 2, height // 4, width * 9 // 10, height * 3 // 4], fill=(240, 230, 200))
        for x in range(0, width, 16):
            draw.line([x, 0, width - x, height], fill=(x % 255, 80, 160), width=2)
        pictures.append(image)
    return pictures


def _random_colour(rng: random.Random) -> Colour:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _random_shapes(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    count: int,
    *,
    corners: tuple[range, range],
    sizes: tuple[range, range],
) -> None:
    """``count`` ellipses or rectangles in random colours, corner drawn from ``corners`` and size from ``sizes``
    (x and y ranges)."""
    (xs, ys), (widths, heights) = corners, sizes
    for _ in range(count):
        x0, y0 = rng.randrange(xs.start, xs.stop), rng.randrange(ys.start, ys.stop)
        box = (x0, y0, x0 + rng.randrange(widths.start, widths.stop), y0 + rng.randrange(heights.start, heights.stop))
        colour = _random_colour(rng)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)


def draw_picture(
    *,
    width: int = 320,
    height: int = 240,
    color: Colour = (40, 120, 200),
    rng: random.Random | None = None,
) -> Image.Image:
    """The plain picture of the web tests and the benchmarks: a light rectangle and a dark circle on ``color``
    (some structure, not a flat colour; the same every time). With ``rng``: a random background and a dozen random
    shapes on top, different for every draw (the benchmarks need distinct files: the same file twice is
    de-duplicated).
    """
    if rng is not None:
        color = _random_colour(rng)
    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 4, height // 4, width // 2, height * 3 // 4], fill=(230, 230, 230))
    draw.ellipse([width // 2, height // 3, width * 4 // 5, height * 2 // 3], fill=(20, 20, 20))
    if rng is not None:
        corners = (range(width), range(height))
        _random_shapes(draw, rng, 12, corners=corners, sizes=(range(20, width // 2), range(20, height // 2)))
    return image


def draw_scene(rng: random.Random, size: int = 128) -> Image.Image:
    """Random large shapes on a coloured background: a distinct, photo-like picture per call (no pixel noise)."""
    image = Image.new("RGB", (size, size), _random_colour(rng))
    corners = range(-size // 4, size + 1)
    sizes = range(size // 6, size // 2 + 1)
    _random_shapes(ImageDraw.Draw(image), rng, 6, corners=(corners, corners), sizes=(sizes, sizes))
    return image


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


def drawn_pictures(seed: int = 0) -> list[Image.Image]:
    """Four drawn pictures of different sizes and aspect ratios, phone-like and not."""
    rng = random.Random(seed)
    sizes = [(320, 240), (200, 300), (224, 224), (640, 480)]
    pictures = []
    for index, (width, height) in enumerate(sizes):
        draw: Callable[[random.Random, int], Image.Image] = draw_phone_like if index % 2 else draw_not_phone
        pictures.append(draw(rng, max(width, height)).resize((width, height)))
    return pictures


def draw_scene_phone(
    rng: random.Random, *, size: int = 224, phone: bool = True
) -> tuple[Image.Image, NormalisedBox | None]:
    """A busy :func:`draw_scene` with, when ``phone``, one small phone (dark slab, lit screen) at a random spot.

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


def draw_textured(label: str, rng: random.Random) -> Image.Image:
    """A 160x120 picture on its own random background texture: a dark upright slab ("phone") on grey, or a bright
    disc ("not_phone") on green. Distinct perceptual hashes, so grouped splits have many groups to spread.
    """
    noise = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    if label == "phone":
        base = np.array([220, 220, 225]) * 0.7 + noise * 0.3
    else:
        base = np.array([40, 140, 60]) * 0.7 + noise * 0.3
    image = Image.fromarray(base.astype(np.uint8)).resize((160, 120), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    if label == "phone":
        x = rng.randint(10, 100)
        draw.rounded_rectangle([x, 15, x + rng.randint(30, 45), 105], radius=6, fill=(15, 15, 20))
    else:
        x = rng.randint(10, 70)
        draw.ellipse([x, 20, x + rng.randint(50, 80), 100], fill=(250, rng.randint(150, 220), 30))
    return image


def draw_desk_with_phone(width: int = 640, height: int = 480, *, seed: int = 0) -> Image.Image:
    """A desk with a smartphone on it (dark body, lit screen with app tiles): the browser tests' screenshot prop."""
    scene = Image.new("RGB", (width, height), (176, 132, 92))
    draw = ImageDraw.Draw(scene)
    for stripe in range(0, height, 18):  # wood grain
        shade = 150 + (stripe * 7 + seed * 13) % 40
        draw.line([(0, stripe), (width, stripe + 30)], fill=(shade + 20, shade - 20, shade - 60), width=3)
    left, top = int(width * (0.38 + 0.1 * seed)), int(height * 0.18)
    phone_w, phone_h = int(width * 0.24), int(height * 0.64)
    draw.rounded_rectangle([left + 8, top + 10, left + phone_w + 8, top + phone_h + 10], 28, fill=(70, 50, 35))
    draw.rounded_rectangle([left, top, left + phone_w, top + phone_h], 28, fill=(24, 24, 28))
    screen = [left + 10, top + 26, left + phone_w - 10, top + phone_h - 26]
    draw.rounded_rectangle(screen, 10, fill=(40, 110, 200))
    tile = (screen[2] - screen[0] - 40) // 4
    for row in range(4):
        for column in range(4):
            x = screen[0] + 8 + column * (tile + 8)
            y = screen[1] + 40 + row * (tile + 12)
            color = [(240, 90, 80), (250, 200, 60), (90, 200, 120), (240, 240, 250)][(row + column + seed) % 4]
            draw.rounded_rectangle([x, y, x + tile, y + tile], 6, fill=color)
    draw.ellipse([left + phone_w // 2 - 5, top + 8, left + phone_w // 2 + 5, top + 18], fill=(10, 10, 10))
    return scene.filter(ImageFilter.GaussianBlur(0.6))


def draw_red_mug(width: int = 640, height: int = 480) -> Image.Image:
    """A red mug on a table: the browser tests' "not a phone" screenshot prop."""
    scene = Image.new("RGB", (width, height), (214, 220, 226))
    draw = ImageDraw.Draw(scene)
    draw.rectangle([0, int(height * 0.7), width, height], fill=(150, 120, 95))
    draw.rounded_rectangle([220, 150, 380, 360], 18, fill=(200, 60, 50))
    draw.ellipse([360, 200, 450, 300], outline=(200, 60, 50), width=18)
    return scene


def draw_large_picture(side: int = 6000) -> Image.Image:
    """A ``side`` x ``side`` grey gradient crossed by red lines: slow to decode and resize (36 megapixels by
    default), for tests that need a worker busy on one picture."""
    image = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for offset in range(0, side, 300):
        draw.line([(0, offset), (side, side - offset)], fill=(200, 30, 30), width=9)
    return image
