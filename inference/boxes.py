"""Where the phones are: boxes from a localising model's per-cell outputs, in NumPy for every engine.

A scene model scores every cell of a grid laid over the picture and, for each cell, says how far the phone it
sees reaches left, up, right and down. A picture's verdict is its best cell's evidence (which carries the pooled
score of the whole picture, see ``ScenePhoneNet.from_features``); its boxes are the cells that are
local maxima of the score, strongest first, with overlapping boxes of the same phone merged away (NMS). Torch-free
on purpose: the ONNX serving path and the PyTorch classifier decode boxes here, so both give the same boxes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# More boxes than this on one picture are noise for a person looking at it.
MAX_BOXES = 5
# Two boxes overlapping more than this are taken to be the same phone.
SAME_PHONE_IOU = 0.3


@dataclass(frozen=True)
class Box:
    """One phone found: corners normalised to the picture as shown (0-1, x right, y down) and its probability."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"box": self.rounded_corners(), "score": self.score}

    def rounded_corners(self) -> list[float]:
        """(x1, y1, x2, y2) to four places, as the API and the command line show them."""
        return [round(self.x1, 4), round(self.y1, 4), round(self.x2, 4), round(self.y2, 4)]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2


def local_maxima(cell_logits: np.ndarray) -> np.ndarray:
    """Flat indices of the cells that score at least as high as each of their eight neighbours, best first."""
    grid = np.asarray(cell_logits, dtype=np.float32)
    padded = np.pad(grid, 1, constant_values=-np.inf)
    height, width = grid.shape
    neighbours = np.stack(
        [padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    )
    peaks = np.flatnonzero(grid.ravel() >= neighbours.max(axis=0).ravel())
    return peaks[np.argsort(-grid.ravel()[peaks], kind="stable")]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    width = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    height = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    intersection = width * height
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - intersection
    return intersection / union if union > 0 else 0.0


def decode_boxes(
    cell_logits: np.ndarray,
    cell_boxes: np.ndarray,
    *,
    probability: Callable[[np.ndarray], list[float]],
    threshold: float,
    max_boxes: int = MAX_BOXES,
) -> list[Box]:
    """The phones of one picture: peaks whose calibrated probability reaches ``threshold``, best first.

    ``cell_logits`` is (H, W) uncalibrated log-odds, ``cell_boxes`` (4, H, W) the box each cell predicts
    (x1, y1, x2, y2, normalised); ``probability`` calibrates logits exactly as the verdict does, so the best box's
    score is the picture's probability. A picture below the threshold has no boxes.
    """
    peaks = local_maxima(cell_logits)
    scores = probability(np.asarray(cell_logits, dtype=np.float32).ravel()[peaks])
    corners = np.asarray(cell_boxes, dtype=np.float32).reshape(4, -1)
    kept: list[Box] = []
    for peak, score in zip(peaks, scores, strict=True):
        if score < threshold or len(kept) >= max_boxes:
            break
        x1, y1, x2, y2 = (float(value) for value in corners[:, peak])
        box = Box(x1, y1, x2, y2, round(float(score), 6))
        if all(iou(box, other) <= SAME_PHONE_IOU for other in kept):
            kept.append(box)
    return kept
