"""Two visually distinct classes the tests generate: dark upright slabs ("phone") and bright discs ("not_phone").

Each picture has its own random background texture, so perceptual hashes differ and grouped splits have many
groups to spread over their folds.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def synthetic_picture(label: str, rng: random.Random) -> Image.Image:
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


def write_synthetic_folder(root: Path, *, per_label: int = 16, seed: int = 0) -> Path:
    """``root/phone/*.png`` and ``root/not_phone/*.png``, ``per_label`` of each."""
    rng = random.Random(seed)
    for label in ("phone", "not_phone"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_label):
            synthetic_picture(label, rng).save(root / label / f"{label}-{index}.png")
    return root
