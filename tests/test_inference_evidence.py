"""A multi-scale verdict's evidence map shows the crop that found the phone, where that crop lies in the picture."""

from __future__ import annotations

import numpy as np
import pytest

from inference.evidence import UPSAMPLING, merged_evidence
from inference.preprocessing import crop_boxes


def test_a_crops_strong_cell_lands_where_that_crop_sits_in_the_picture() -> None:
    width, height = 400, 200
    boxes = crop_boxes(width, height, 2, 0.6)  # whole picture, then crops row by row: the last is bottom right
    views = np.full((1 + len(boxes), 7, 7), -3.0, dtype=np.float32)
    views[4, 6, 6] = 5.0  # the bottom-right crop's bottom-right cell: the picture's bottom-right corner
    views[2, 0, 0] = 1.0  # the top-right crop's top-left cell
    merged = merged_evidence(views, (width, height), grid=2, fraction=0.6)
    assert merged.shape == (7 * UPSAMPLING, 7 * UPSAMPLING)
    row, column = np.unravel_index(int(merged.argmax()), merged.shape)
    assert row >= merged.shape[0] - 3 and column >= merged.shape[1] - 3
    left, top = boxes[1][0] / width * merged.shape[1], boxes[1][1] / height * merged.shape[0]
    assert merged[round(top), round(left)] == pytest.approx(1.0)
    assert merged[merged.shape[0] // 2 - 2, 2] == pytest.approx(-3.0)  # nothing anywhere else


def test_a_whole_picture_model_keeps_its_own_map() -> None:
    cells = np.arange(49, dtype=np.float32).reshape(1, 7, 7)
    assert np.array_equal(merged_evidence(cells, (50, 80), grid=0, fraction=0.6), cells[0])


def test_a_map_count_that_does_not_match_the_crops_is_refused() -> None:
    with pytest.raises(ValueError, match="Expected 5 evidence maps"):
        merged_evidence(np.zeros((3, 7, 7)), (100, 100), grid=2, fraction=0.6)
