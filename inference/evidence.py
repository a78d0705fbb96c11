"""One evidence map for a multi-scale verdict: the whole picture's cells and every crop's cells on one grid.

A multi-scale model keeps the strongest phone evidence of the whole picture and its crops, so the phone that
decided a verdict may show only in a crop. Drawing the whole picture's map alone would then point at nothing;
this lays each view's per-cell logits over the part of the picture that view saw and keeps the strongest value
per place, which is the same "strongest evidence wins" rule the verdict follows. NumPy only (serving has no torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference.preprocessing import crop_boxes

# Output cells per whole-picture cell along a side: fine enough that a 45%-of-a-side crop's 7 cells keep their shape.
UPSAMPLING = 4


def _stretch(cells: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``cells`` resized to (rows, columns) by nearest neighbour (each output place takes the cell it falls in)."""
    row_index = np.minimum((np.arange(rows) + 0.5) * cells.shape[0] / rows, cells.shape[0] - 1).astype(int)
    column_index = np.minimum((np.arange(columns) + 0.5) * cells.shape[1] / columns, cells.shape[1] - 1).astype(int)
    return cells[np.ix_(row_index, column_index)]


def _span(start: int, end: int, side: int, cells: int) -> slice:
    """Output cells covering pixels ``start``..``end`` of a ``side``-pixel side cut into ``cells`` (at least one)."""
    first = round(start / side * cells)
    return slice(first, max(round(end / side * cells), first + 1))


def merged_evidence(
    view_cells: Sequence[np.ndarray] | np.ndarray, image_size: tuple[int, int], *, grid: int, fraction: float
) -> np.ndarray:
    """The strongest evidence per place over the whole picture (``view_cells[0]``) and its crops (the rest).

    ``view_cells`` holds one (H, W) map per view in the order multi-scale preprocessing makes the views (the
    whole picture, then :func:`~inference.preprocessing.crop_boxes`); ``image_size`` is the picture's (width,
    height). Returns a (H * UPSAMPLING, W * UPSAMPLING) map over the whole picture; with ``grid`` 0 the whole
    picture's map itself.
    """
    views = np.asarray(view_cells, dtype=np.float32)
    boxes = crop_boxes(*image_size, grid, fraction)
    if len(views) != 1 + len(boxes):
        raise ValueError(f"Expected {1 + len(boxes)} evidence maps (picture + crops), got {len(views)}.")
    if not boxes:
        whole: np.ndarray = views[0]
        return whole
    width, height = image_size
    rows, columns = views.shape[1] * UPSAMPLING, views.shape[2] * UPSAMPLING
    merged = _stretch(views[0], rows, columns)
    for cells, (left, top, right, bottom) in zip(views[1:], boxes, strict=True):
        region = merged[_span(top, bottom, height, rows), _span(left, right, width, columns)]
        np.maximum(region, _stretch(cells, *region.shape), out=region)
    return merged
