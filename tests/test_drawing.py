"""The drawer's promise: the same call (and seed) gives the same pixels, so drawn data sets, the benchmarks'
pictures and the export's parity probe are reproducible, and different seeds give different pictures."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from PIL import Image

from inference import drawing

SEEDED: dict[str, Callable[[random.Random], Image.Image]] = {
    "draw_picture": lambda rng: drawing.draw_picture(rng=rng),
    "draw_scene": drawing.draw_scene,
    "draw_phone_like": drawing.draw_phone_like,
    "draw_not_phone": drawing.draw_not_phone,
    "draw_scene_phone": lambda rng: drawing.draw_scene_phone(rng)[0],
    "draw_textured": lambda rng: drawing.draw_textured("phone", rng),
}


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_a_seed_gives_the_same_pixels_and_another_seed_others(name: str) -> None:
    draw = SEEDED[name]
    first, again, other = draw(random.Random(1)), draw(random.Random(1)), draw(random.Random(2))
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_the_probe_is_a_landscape_and_a_portrait_picture_the_same_every_time() -> None:
    pictures = drawing.probe_pictures()
    assert [picture.size for picture in pictures] == [(320, 240), (200, 300)]
    assert [picture.tobytes() for picture in pictures] == [picture.tobytes() for picture in drawing.probe_pictures()]


def test_a_drawn_phone_box_lies_inside_the_picture() -> None:
    rng = random.Random(0)
    for _ in range(20):
        _, box = drawing.draw_scene_phone(rng, size=96)
        assert box is not None
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
