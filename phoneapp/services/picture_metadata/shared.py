"""What every container walker shares: the error that sends a picture to re-encoding instead, the minimal EXIF
block that keeps only the orientation, and the check that a colour profile is one.
"""

from __future__ import annotations

from PIL import Image

from inference.images import ORIENTATION_TAG

EXIF_HEADER = b"Exif\x00\x00"
# A colour profile (ICC.1 header): its first 4 bytes are its length, bytes 36-39 the signature "acsp". Anything
# else stored where a profile goes is not one, and is dropped. A PNG's profile is decompressed up to this size.
_ICC_SIGNATURE = b"acsp"
_ICC_TAGS_AT = 132  # the 128-byte header, then the tag count; the tag table's 12-byte entries follow
ICC_MAX_BYTES = 16 * 1024 * 1024


class Unwalkable(ValueError):
    """The container structure is not what its format promises; the picture is re-encoded instead."""


def minimal_exif(payload: bytes) -> bytes | None:
    """A TIFF-structured EXIF block (no ``Exif`` header) holding only the orientation, or ``None`` when the
    picture needs none (orientation absent or 1). Returns ``payload`` itself when it already is exactly that."""
    exif = Image.Exif()
    try:
        exif.load(payload)
        orientation = exif.get(ORIENTATION_TAG, 1)
    except Exception:  # an unreadable EXIF block is dropped whole: no orientation to keep
        return None
    if orientation not in range(2, 9):
        return None
    minimal = Image.Exif()
    minimal[ORIENTATION_TAG] = orientation
    rebuilt = minimal.tobytes()[len(EXIF_HEADER) :]
    bare = payload[len(EXIF_HEADER) :] if payload.startswith(EXIF_HEADER) else payload
    return bare if bare == rebuilt else rebuilt


def is_colour_profile(profile: bytes) -> bool:
    """Whether ``profile`` is laid out as an ICC profile: its header's length and signature, and a tag table whose
    tags account for every byte after it (up to the 4-byte alignment between them), so nothing rides along."""
    if len(profile) < _ICC_TAGS_AT or profile[36:40] != _ICC_SIGNATURE or int.from_bytes(profile[:4]) != len(profile):
        return False
    table_end = _ICC_TAGS_AT + 12 * int.from_bytes(profile[128:_ICC_TAGS_AT])
    if table_end > len(profile):
        return False
    entries = range(_ICC_TAGS_AT, table_end, 12)
    spans = sorted(
        (int.from_bytes(profile[at + 4 : at + 8]), int.from_bytes(profile[at + 8 : at + 12])) for at in entries
    )
    covered = table_end
    for offset, size in spans:
        if offset > covered + 3:  # bytes between tags that no tag accounts for
            return False
        covered = max(covered, offset + size)
    return len(profile) - covered <= 3
