"""Counting the parts Pillow walks one at a time in Python before a picture's pixels: JPEG markers (fill bytes
included) before the first scan, PNG chunks, GIF blocks before the first image.

A file made of little else costs seconds to open however small its picture: 9 MB of 1.2 million empty JPEG APP1
segments took 2.6 s to read its header and 2.9 s more to decode it, 600,000 PNG text chunks 4 s, 1.5 million GIF
comment blocks 2.2 s, against hundredths of a second for a real photo of that size, so an upload of 20 such files
held a web process for over a minute. Real pictures have a few dozen segments; a PNG encoder's data chunks are
8-64 kB each (at most ~2,000 for a 15 MB file), and only small ones count. Counting stops one part past the
limit, so it costs at most a few milliseconds. A structure it cannot follow is left to the decoder, which says
what is wrong with it.
"""

from __future__ import annotations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Parts a picture may have before it is refused: far above real files, far below what costs a second.
MAX_PARTS = 10_000
# JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
_JPEG_START_OF_SCAN = 0xDA
_PNG_PIXEL_DATA = frozenset({b"IDAT", b"fdAT"})
_PNG_SMALL_DATA = 1024


def picture_parts_count(data: bytes, *, limit: int = MAX_PARTS) -> int:
    """How many parts ``data`` has (see the module docstring), counted up to ``limit + 1``; 0 for a format this
    does not count (WebP, BMP and TIFF are parsed in C, or have a bounded number of parts)."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_parts(data, limit)
    if data.startswith(PNG_SIGNATURE):
        return _png_parts(data, limit)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_parts(data, limit)
    return 0


def _jpeg_parts(data: bytes, limit: int) -> int:
    count, position = 0, 2
    while count <= limit and position + 2 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        count += 1
        if marker == 0xFF:  # a fill byte: Pillow reads each one on its own
            position += 1
        elif marker in _JPEG_STANDALONE:
            position += 2
        elif marker == _JPEG_START_OF_SCAN:
            break
        else:
            position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return count


def _png_parts(data: bytes, limit: int) -> int:
    count, position = 0, len(PNG_SIGNATURE)
    while count <= limit and position + 8 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IEND":
            break
        # Pixel data chunks count only when small: an encoder that writes one per row must not be refused for a
        # tall picture, and at 1 kB a chunk 15 MB hold ~15,000 of them, a tenth of a second.
        if kind not in _PNG_PIXEL_DATA or length < _PNG_SMALL_DATA:
            count += 1
        position += 12 + length  # length, type, data, CRC
    return count


def _gif_parts(data: bytes, limit: int) -> int:
    flags = data[10] if len(data) > 10 else 0
    position = 13 + (3 << ((flags & 0x07) + 1) if flags & 0x80 else 0)  # after the global colour table
    count = 0
    while count <= limit and position < len(data) and data[position] == 0x21:  # an extension, not yet the image
        position += 2  # introducer and label, then sub-blocks, each read on its own, up to an empty one
        while count <= limit and position < len(data):
            size = data[position]
            count += 1
            position += 1 + size
            if size == 0:
                break
    return count
