"""Data sets the ML tests write for themselves from drawn pictures, so no test needs the shared data set."""

from __future__ import annotations

import random
from pathlib import Path

from inference.drawing import draw_not_phone, draw_phone_like, draw_scene_phone


def write_tiny_dataset(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """``root/phone`` and ``root/not_phone`` with ``per_class`` drawn JPEGs each."""
    rng = random.Random(seed)
    for label, draw in (("phone", draw_phone_like), ("not_phone", draw_not_phone)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            draw(rng).save(root / label / f"{label}_{index:03d}.jpg", quality=90)
    return root


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
