"""What each grid cell should say: phone (1), no phone (0) or no opinion (ignored), and the box it should draw.

Rules (CenterNet/FCOS practice, sized for phones a few percent of the frame):
- a cell is positive when its centre lies within the central part of a phone box (``CENTRE_FRACTION`` of the
  box's half-sides, and never less than half a cell, so the cell holding the phone's centre is always positive);
- the other cells touching a phone box widened by half a cell are ignored: part phone, part not;
- every other cell of a picture with boxes, and every cell of a not-phone picture, is negative;
- a phone picture without boxes has no cell targets at all: it is trained through its picture loss alone
  (multiple-instance: the pooled verdict, or its best cell, as ``phone_view_loss`` chooses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE = -1.0
CENTRE_FRACTION = 0.35


def cell_targets(
    boxes: Sequence[tuple[float, float, float, float]], grid: int, *, is_phone: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(objectness (G, G) in {1, 0, IGNORE}, geometry (4, G, G): centre offset x, y and log w, h in cells).

    Geometry is meaningful only on positive cells; each positive cell draws the box whose centre is nearest.
    """
    objectness = np.zeros((grid, grid), dtype=np.float32)
    geometry = np.zeros((4, grid, grid), dtype=np.float32)
    if is_phone and not boxes:
        objectness[:] = IGNORE
        return objectness, geometry
    centres = (np.arange(grid, dtype=np.float32) + 0.5) / grid
    cx, cy = np.meshgrid(centres, centres)
    nearest = np.full((grid, grid), np.inf, dtype=np.float32)
    half_cell = 0.5 / grid
    for x1, y1, x2, y2 in boxes:
        bx, by, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        touching = (cx + half_cell > x1 - half_cell) & (cx - half_cell < x2 + half_cell)
        touching &= (cy + half_cell > y1 - half_cell) & (cy - half_cell < y2 + half_cell)
        objectness[touching & (objectness == 0)] = IGNORE
        reach_x, reach_y = max(half_cell, CENTRE_FRACTION * bw / 2), max(half_cell, CENTRE_FRACTION * bh / 2)
        distance = np.hypot(cx - bx, cy - by)
        positive = (np.abs(cx - bx) <= reach_x) & (np.abs(cy - by) <= reach_y) & (distance < nearest)
        objectness[positive] = 1.0
        nearest[positive] = distance[positive]
        geometry[0][positive] = (bx - cx[positive]) * grid
        geometry[1][positive] = (by - cy[positive]) * grid
        geometry[2][positive] = np.log(max(bw * grid, 1e-3))
        geometry[3][positive] = np.log(max(bh * grid, 1e-3))
    return objectness, geometry
