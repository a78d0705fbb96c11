"""PNG (and APNG), chunk by chunk: the chunks that make or describe the picture, cut to the size their format
defines, the picture data cut at the end of its zlib stream; eXIf reduced to the orientation.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from phoneapp.services.picture_metadata.shared import ICC_MAX_BYTES, Unwalkable, is_colour_profile, minimal_exif

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG chunks kept: the picture, its palette and transparency, what its colours and pixel size mean, and APNG's
# animation; eXIf is rewritten like JPEG's EXIF. A list of what is allowed: free text (tEXt, zTXt, iTXt), the time
# of the last edit and any private chunk (an application's own, which can hold anything) go.
_PNG_KEPT_CHUNKS = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCv", b"cLLI"}
    | {b"sBIT", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT"}
)
# The standard size of the kept PNG chunks whose size is fixed: a longer one is cut to it (the extra bytes say
# nothing about the picture and could be anything).
_PNG_CHUNK_SIZES = {
    b"IHDR": 13,
    b"gAMA": 4,
    b"cHRM": 32,
    b"sRGB": 1,
    b"pHYs": 9,
    b"cICP": 4,
    b"mDCv": 24,
    b"cLLI": 8,
    b"acTL": 8,
    b"fcTL": 26,
    b"IEND": 0,
}
# The chunks whose size depends on the colour type (IHDR's byte 9: 0 grey, 2 RGB, 3 palette, 4 grey + alpha,
# 6 RGB + alpha): transparency, background colour and significant bits. A colour type not listed: the chunk goes.
_PNG_COLOUR_CHUNK_SIZES = {
    b"tRNS": {0: 2, 2: 6, 3: 256},  # pictures with alpha have no tRNS
    b"bKGD": {0: 2, 2: 6, 3: 1, 4: 2, 6: 6},
    b"sBIT": {0: 1, 2: 3, 3: 3, 4: 2, 6: 4},
}
# How much of a PNG's compressed picture data (IDAT) is inflated at a time while looking for the end of its zlib
# stream (anything in IDAT chunks after that end is not part of the picture).
_INFLATE_STEP = 1 << 20


def png_stripped(data: bytes) -> bytes:
    """The PNG with only the chunks it needs, each cut to its defined size, and eXIf reduced to the orientation;
    raises :class:`Unwalkable` when its chunks do not add up."""
    if not data.startswith(_PNG_SIGNATURE):
        raise Unwalkable("no PNG signature")
    out = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    colour_type = data[pos + 17] if len(data) > pos + 17 else 0  # IHDR comes first
    run: list[_PictureDataChunk] = []  # consecutive IDAT (or one frame's fdAT) chunks: one zlib stream
    while True:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise Unwalkable("chunk runs past the end")
        payload = data[pos + 8 : pos + 8 + length]
        if run and kind != run[-1].kind:
            _png_run_cut(out, run)
            run = []
        if kind == b"eXIf":
            kept = minimal_exif(payload)
            if kept is not None:
                out.append(_png_chunk(b"eXIf", kept))
        elif kind == b"iCCP":
            profile = _png_profile_cut(payload)
            if profile is not None:
                out.append(data[pos:end] if profile == payload else _png_chunk(kind, profile))
        elif kind in (b"IDAT", b"fdAT"):
            prefix = payload[:4] if kind == b"fdAT" else b""  # an fdAT chunk's sequence number
            run.append(_PictureDataChunk(len(out), kind, prefix, payload[len(prefix) :]))
            out.append(data[pos:end])
        elif kind in _PNG_KEPT_CHUNKS:
            size = _png_chunk_size(kind, colour_type, length)
            if size is not None:
                out.append(data[pos:end] if length <= size else _png_chunk(kind, payload[:size]))
        pos = end
        if kind == b"IEND":
            return b"".join(out)


@dataclass(frozen=True)
class _PictureDataChunk:
    """An IDAT or fdAT chunk: where it went in the output, its kind, sequence number (fdAT) and compressed data."""

    place: int
    kind: bytes
    prefix: bytes
    data: bytes


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_chunk_size(kind: bytes, colour_type: int, length: int) -> int | None:
    """How many bytes of a kept chunk's payload its format defines for this colour type; ``None`` when the chunk
    means nothing for it (transparency of a picture with alpha, a truecolour picture's "suggested" palette) and
    goes."""
    if kind == b"PLTE":
        return min(length, 768) if colour_type == 3 else None
    if kind in _PNG_CHUNK_SIZES:
        return _PNG_CHUNK_SIZES[kind]
    if kind in _PNG_COLOUR_CHUNK_SIZES:
        return _PNG_COLOUR_CHUNK_SIZES[kind].get(colour_type)
    return length


def _png_run_cut(out: list[bytes], run: list[_PictureDataChunk]) -> None:
    """Cut a run of picture data chunks at the end of the zlib stream they hold together: data after it is no part
    of the picture (decoders stop there). A chunk wholly past the end goes (an fdAT keeps its sequence number)."""
    left = _zlib_stream_length(b"".join(chunk.data for chunk in run))
    for chunk in run:
        kept = chunk.data[:left]
        left -= len(kept)
        if len(kept) < len(chunk.data):
            out[chunk.place] = _png_chunk(chunk.kind, chunk.prefix + kept) if kept or chunk.prefix else b""


def _zlib_stream_length(stream: bytes) -> int:
    """How many bytes of ``stream`` its zlib stream takes, inflated a step at a time (the output is not kept)."""
    inflater = zlib.decompressobj()
    pending = stream
    try:
        while pending and not inflater.eof:
            inflater.decompress(pending, _INFLATE_STEP)
            pending = inflater.unconsumed_tail
    except zlib.error as error:
        raise Unwalkable("the picture data is not a zlib stream") from error
    if not inflater.eof:
        raise Unwalkable("the picture data ends before its zlib stream does")
    return len(stream) - len(inflater.unused_data)


def _png_profile_cut(payload: bytes) -> bytes | None:
    """An ``iCCP`` chunk's payload (name, NUL, method 0, zlib data) up to the end of its zlib stream when that
    holds a colour profile, else ``None`` (the chunk is dropped)."""
    name_end = payload.find(b"\x00")
    if not 0 < name_end < 80 or payload[name_end + 1 : name_end + 2] != b"\x00":
        return None
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(payload[name_end + 2 :], ICC_MAX_BYTES)
    except zlib.error:
        return None
    if not inflater.eof or not is_colour_profile(profile):
        return None
    return payload[: len(payload) - len(inflater.unused_data)]
