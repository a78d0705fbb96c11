"""BMP: cut at the file size its header declares, the bytes no decoder reads zeroed; its pixels, alpha included,
stay as they were.
"""

from __future__ import annotations

from inference.images import open_quietly
from phoneapp.services.picture_metadata.shared import Unwalkable


def bmp_stripped(data: bytes) -> bytes:
    """The BMP up to the file size its header declares (its pixels, colour table and any profile are inside it):
    whatever was appended after goes, the pixels stay as they were (alpha included, which Pillow cannot write)."""
    if data[:2] != b"BM" or len(data) < 14:
        raise Unwalkable("no BMP header")
    declared, pixels_at = int.from_bytes(data[2:6], "little"), int.from_bytes(data[10:14], "little")
    if not 14 < pixels_at < declared <= len(data):
        raise Unwalkable("no usable file size in the header")
    cut = _bmp_unused_zeroed(data[:declared], pixels_at)
    try:
        with open_quietly(cut) as image:
            image.load()
    except Exception as error:  # the declared size was wrong (some writers): rewrite from the pixels instead
        raise Unwalkable("the declared size cuts the picture") from error
    return cut


def _bmp_unused_zeroed(data: bytes, pixels_at: int) -> bytes:
    """The BMP with zeros in the bytes no decoder reads: between its headers (with masks and colour table) and its
    pixels, and after the pixels of an uncompressed one, but for an embedded colour profile's bytes."""
    header_size = int.from_bytes(data[14:18], "little")
    core = header_size == 12  # the old OS/2 header: 16-bit sizes, 3-byte colour table entries
    bits = int.from_bytes(data[24:26] if core else data[28:30], "little")
    compression = 0 if core else int.from_bytes(data[30:34], "little")
    colours = 0 if core else int.from_bytes(data[46:50], "little")
    colours = colours or (2**bits if bits <= 8 else 0)
    masks = {3: 12, 6: 16}.get(compression, 0) if header_size == 40 else 0
    headers_end = 14 + header_size + masks + colours * (3 if core else 4)
    unused = [(headers_end, pixels_at)]
    if compression in (0, 3, 6):  # uncompressed: rows of whole 4-byte words
        width = int.from_bytes(data[18:20] if core else data[18:22], "little", signed=not core)
        height = int.from_bytes(data[20:22] if core else data[22:26], "little", signed=not core)
        unused.append((pixels_at + (abs(width) * bits + 31) // 32 * 4 * abs(height), len(data)))
    profile = range(0)
    if header_size >= 124 and data[70:74] == b"DEBM":  # bV5CSType "MBED": a profile at an offset from the header
        profile_at = 14 + int.from_bytes(data[126:130], "little")
        profile = range(profile_at, profile_at + int.from_bytes(data[130:134], "little"))
    zeroed = bytearray(data)
    for start, end in unused:
        _zero_except(zeroed, range(max(start, 0), min(end, len(data))), kept=profile)
    return bytes(zeroed)


def _zero_except(data: bytearray, span: range, *, kept: range) -> None:
    """Zero the bytes of ``span`` in ``data``, but for those in ``kept`` (on either side of it, if inside)."""
    for part in (range(span.start, min(span.stop, kept.start)), range(max(span.start, kept.stop), span.stop)):
        if part:
            data[part.start : part.stop] = bytes(len(part))
