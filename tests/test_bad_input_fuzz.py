"""Fuzzing the upload endpoint with generated files: never a 500, never a row without its files or a file
without its row.

Inputs are random bytes and mutations of real pictures, HEIC included (bit flips, truncation, inserted junk,
one format's header on another's body), under every accepted extension. ``FUZZ_EXAMPLES`` raises the count for
a longer run; the default keeps the suite fast and the run is derandomized so CI is reproducible
(``FUZZ_RANDOM=1`` explores new inputs on each run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from phoneapp.models import Upload
from tests.images import draw_picture, encode, uploaded_file

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
EXTENSIONS = [".jpg", ".png", ".gif", ".webp", ".bmp", ".tif", ".heic", ".jpeg"]


def heic_seed() -> bytes:
    import io

    import pillow_heif

    buffer = io.BytesIO()
    pillow_heif.from_pillow(draw_picture(width=64, height=48)).save(buffer, quality=60)
    return buffer.getvalue()


# HEIC is among the seeds because its decoder (libheif, native code) is the newest attack surface we added.
SEEDS = [
    encode(draw_picture(width=64, height=48), image_format)
    for image_format in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
] + [heic_seed()]


@st.composite
def mutated_pictures(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "splice", "overwrite_header"]))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "splice":
            other = draw(st.sampled_from(SEEDS))
            data = bytearray(data[:position] + other[position:])
        elif kind == "overwrite_header":
            data[:8] = draw(st.binary(min_size=8, max_size=8))
    return bytes(data)


upload_bodies = st.one_of(st.binary(min_size=0, max_size=2048), mutated_pictures())


def files_in(media: Path) -> set[str]:
    return {str(path.relative_to(media)) for path in media.rglob("*") if path.is_file()}


def files_of_rows() -> set[str]:
    names: set[str] = set()
    for image, thumbnail, heatmap in Upload.objects.values_list("image", "thumbnail", "heatmap"):
        names.update(name for name in (image, thumbnail, heatmap) if name)
    return names


def test_fuzzed_uploads_never_break_the_server_or_storage(
    alice_client: Client, isolated_storage: Path, settings
) -> None:
    settings.UPLOAD_RATE_LIMIT = "100000/minute"
    media = isolated_storage / "media"
    seen: dict[int, int] = {}

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=upload_bodies, extension=st.sampled_from(EXTENSIONS), count=st.integers(min_value=1, max_value=3))
    def one_request(body: bytes, extension: str, count: int) -> None:
        files = [uploaded_file(f"fuzz{index}{extension}", body, "image/jpeg") for index in range(count)]
        response = alice_client.post("/api/uploads/", {"image": files})

        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code in (201, 400, 413), response.content[:300]
        assert "error" in response.json() if response.status_code != 201 else len(response.json()) == count
        # Rows and files stay in step: every row's files exist, every file belongs to a row.
        assert files_in(media) == files_of_rows()

    one_request()
    assert seen.get(400, 0) > 0  # the fuzzer did reach the refusal paths ...
    assert seen.get(201, 0) > 0  # ... and some mutations still decode, so the storing path was fuzzed too
