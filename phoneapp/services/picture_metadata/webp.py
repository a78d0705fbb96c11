"""WebP, chunk by chunk (inside animation frames too): the picture's chunks and a real colour profile kept, EXIF
reduced to the orientation, XMP and unknown chunks dropped, the extended header's flags made to match.
"""

from __future__ import annotations

import struct

from phoneapp.services.picture_metadata.shared import Unwalkable, is_colour_profile, minimal_exif

# WebP chunks kept: the picture (lossy, lossless, alpha), the extended header, animation frames and the colour
# profile; EXIF is rewritten to its orientation; XMP and unknown chunks go, inside animation frames too.
_WEBP_KEPT_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_WEBP_FRAME_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"ALPH"})
# The kept WebP chunks of a fixed size: the extended header and the animation's colour and loop count. Longer ones
# are cut to it.
_WEBP_CHUNK_SIZES = {b"VP8X": 10, b"ANIM": 6}
# An animation frame (ANMF) starts with 16 bytes of position, size, duration and flags, then its own chunks.
_WEBP_FRAME_HEADER = 16


def webp_stripped(data: bytes) -> bytes:
    """The WebP with only its picture's chunks (inside animation frames too), a real colour profile and EXIF
    reduced to the orientation; raises :class:`Unwalkable` when its chunks do not add up."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Unwalkable("no WebP header")
    end_of_riff = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    chunks = _webp_chunks(data, 12, end_of_riff)
    kept: list[tuple[bytes, bytes]] = []
    has_exif = False
    for kind, payload in chunks:
        if kind == b"EXIF":
            minimal = minimal_exif(payload)
            if minimal is not None:
                kept.append((kind, minimal))
                has_exif = True
        elif kind == b"ANMF":
            kept.append((kind, _webp_frame_stripped(payload)))
        elif kind in _WEBP_KEPT_CHUNKS and (kind != b"ICCP" or is_colour_profile(payload)):
            kept.append((kind, payload[: _WEBP_CHUNK_SIZES.get(kind, len(payload))]))
    body = bytearray(b"WEBP")
    for kind, payload in kept:
        if kind == b"VP8X":  # the extended header announces which metadata chunks follow
            flags = (payload[0] & ~0x0C) | (0x08 if has_exif else 0)
            payload = bytes((flags,)) + payload[1:]
        if kind == b"VP8X" and not any(kind == b"ICCP" for kind, _ in kept):  # a profile dropped: not announced
            payload = bytes((payload[0] & ~0x20,)) + payload[1:]
        body += _webp_chunk(kind, payload)
    return b"RIFF" + struct.pack("<I", len(body)) + bytes(body)


def _webp_chunks(data: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """The (kind, payload) chunks of a RIFF body between ``start`` and ``end``."""
    chunks: list[tuple[bytes, bytes]] = []
    pos = start
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if pos + 8 + length > len(data):
            raise Unwalkable("chunk runs past the end")
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    return chunks


def _webp_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _webp_frame_stripped(frame: bytes) -> bytes:
    """An animation frame with only its picture's chunks (an application can put its own in a frame too)."""
    header = frame[:_WEBP_FRAME_HEADER]
    chunks = _webp_chunks(frame, _WEBP_FRAME_HEADER, len(frame))
    return header + b"".join(_webp_chunk(kind, payload) for kind, payload in chunks if kind in _WEBP_FRAME_CHUNKS)
