"""The pictures the benchmarks send: the shared labelled photos when present, else drawn ones.

Every picture is distinct (uploads of the same file by the same owner are de-duplicated and would not reach the
worker), and kept in memory as the JPEG bytes a client would send. The shared photos are read where they lie,
never copied into the repository.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from inference.drawing import draw_picture

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASET_DIR = REPO_ROOT.parent / "shared" / "datasets" / "phone-images"
# Issue 13's cost is "over the shared pictures": the close-ups above and these scenes, whichever of them is present.
SCENES_DIR = REPO_ROOT.parent / "shared" / "datasets" / "phone-scenes"


def dataset_available() -> bool:
    return (DATASET_DIR / "manifest.csv").is_file()


def labelled_files() -> list[tuple[Path, str]]:
    """Every labelled photo of the shared folders present, as (path, label), in their manifests' order."""
    files = []
    for folder in (DATASET_DIR, SCENES_DIR):
        if (folder / "manifest.csv").is_file():
            with (folder / "manifest.csv").open(newline="") as handle:
                files += [(folder / row["file"], row["label"]) for row in csv.DictReader(handle)]
    return files


def drawn_picture(rng: random.Random, width: int = 640, height: int = 480, *, quality: int = 90) -> bytes:
    """A JPEG of :func:`~inference.drawing.draw_picture` with random shapes, different for every draw."""
    buffer = io.BytesIO()
    draw_picture(width=width, height=height, rng=rng).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def sample_pictures(count: int, *, seed: int = 0) -> tuple[list[bytes], str]:
    """``count`` distinct JPEGs and a description of where they came from."""
    rng = random.Random(seed)
    if dataset_available():
        files = [path for path, _ in labelled_files()]
        rng.shuffle(files)
        chosen = [files[index % len(files)].read_bytes() for index in range(min(count, len(files)))]
        while len(chosen) < count:
            chosen.append(drawn_picture(rng))
        return chosen, f"{DATASET_DIR} and {SCENES_DIR} when present (JPEG, a seeded sample)"
    return [drawn_picture(rng) for _ in range(count)], "drawn 640x480 JPEGs (labelled set not present)"
