"""Splits that keep near-duplicates together: grouped by perceptual hash and by declared group.

A near-duplicate on both sides of a split lets a model score on a picture it has as good as seen; the shared
set still has such pairs above the distance it was de-duplicated at.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ml_training.data import Sample
from ml_training.phash import dhash, hamming_matrix

# dHash bits (of 256) within which two pictures count as one for splitting. On the shared set, pairs up to ~21
# bits are re-encodes or frames of one video; from ~24 on, unrelated objects on plain backgrounds start to match.
DEFAULT_MAX_DISTANCE = 22


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def group_ids(
    samples: Sequence[Sample], images: Sequence[Image.Image], *, max_distance: int = DEFAULT_MAX_DISTANCE
) -> list[int]:
    """A group number per sample: connected components of "hashes within ``max_distance``" or same ``group``."""
    if len(samples) != len(images):
        raise ValueError("Need one image per sample.")
    return group_ids_of_hashes(samples, [dhash(image) for image in images], max_distance=max_distance)


def group_ids_of_hashes(
    samples: Sequence[Sample], hashes: Sequence[np.ndarray], *, max_distance: int = DEFAULT_MAX_DISTANCE
) -> list[int]:
    """:func:`group_ids` from the pictures' dHashes (a caller can hash pictures one at a time, not hold them all)."""
    count = len(samples)
    union = _UnionFind(count)
    if count:
        distances = hamming_matrix(list(hashes))
        for a, b in zip(*((distances <= max_distance) & ~np.eye(count, dtype=bool)).nonzero(), strict=True):
            union.union(int(a), int(b))
    first_with_group: dict[str, int] = {}
    for index, sample in enumerate(samples):
        if sample.group is not None:
            union.union(index, first_with_group.setdefault(sample.group, index))
    roots: dict[int, int] = {}
    return [roots.setdefault(union.find(index), len(roots)) for index in range(count)]


def assign_parts(
    groups: Sequence[int], targets: Sequence[int], fractions: Sequence[float], *, seed: int = 0
) -> list[int]:
    """A part number per sample such that each group lands in one part and each label is spread by ``fractions``.

    Groups are placed largest first (then in seeded random order) into the part furthest below its share of
    that group's majority label, which keeps both the sizes and the class balance of the parts close to target.
    """
    if not fractions or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"Fractions must be non-negative and sum to 1, got {list(fractions)}.")
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    order = list(members)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda group: -len(members[group]))
    label_totals: defaultdict[int, int] = defaultdict(int)
    for target in targets:
        label_totals[target] += 1
    filled: list[defaultdict[int, int]] = [defaultdict(int) for _ in fractions]
    parts = [0] * len(groups)
    for group in order:
        indices = members[group]
        label = round(sum(targets[i] for i in indices) / len(indices))
        deficits = [fraction * label_totals[label] - filled[part][label] for part, fraction in enumerate(fractions)]
        part = max(range(len(fractions)), key=lambda p: (deficits[p], -p))
        for index in indices:
            parts[index] = part
            filled[part][targets[index]] += 1
    return parts
