"""Two visually distinct classes written as PNG folders: dark upright slabs ("phone") and bright discs ("not_phone").

The pictures are :func:`inference.drawing.draw_textured`'s, each on its own random background texture, so
perceptual hashes differ and grouped splits have many groups to spread over their folds.
"""

from __future__ import annotations

import random
from pathlib import Path

from inference.drawing import draw_textured


def write_synthetic_folder(root: Path, *, per_label: int = 16, seed: int = 0) -> Path:
    """``root/phone/*.png`` and ``root/not_phone/*.png``, ``per_label`` of each."""
    rng = random.Random(seed)
    for label in ("phone", "not_phone"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_label):
            draw_textured(label, rng).save(root / label / f"{label}-{index}.png")
    return root
