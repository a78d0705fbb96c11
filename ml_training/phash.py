"""Perceptual hashes: near-identical pictures get hashes a few bits apart."""

from __future__ import annotations

import numpy as np
from PIL import Image

# 16x16 = 256 bits. The common 8x8 dHash puts unrelated centred objects on plain backgrounds (a phone, a shoe)
# within 6 bits of each other on this data; 256 bits separates them while re-encoded copies stay close.
HASH_SIZE = 16


def dhash(image: Image.Image, size: int = HASH_SIZE) -> np.ndarray:
    """Difference hash: ``size * size`` booleans, each whether a pixel is brighter than its right neighbour.

    Survives rescaling, recompression and small colour changes, which is what near-duplicates (re-uploads,
    resized copies) differ by.
    """
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR), dtype=np.int16)
    return (grey[:, 1:] > grey[:, :-1]).flatten()


def hamming_matrix(hashes: list[np.ndarray]) -> np.ndarray:
    """Pairwise Hamming distances between equal-length boolean hashes, shape (n, n)."""
    bits = np.stack(hashes).astype(np.int32)
    # One matrix product instead of n^2 Python comparisons.
    counts = bits.sum(1)
    distances: np.ndarray = counts[:, None] + counts[None, :] - 2 * bits @ bits.T
    return distances
