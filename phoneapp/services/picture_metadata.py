"""Removing personal metadata from an uploaded picture before it is stored.

Phone photos carry where they were taken (EXIF GPS), the camera's serial number and maker notes, editing
software, authors and free text (XMP, IPTC, JPEG comments, PNG text chunks). The stored picture is served back to
its owner and to staff reviewers, so by default none of it is kept (``KEEP_PICTURE_METADATA=1`` keeps the file
byte for byte, README "Privacy").

The pixels are never touched where the format allows it: JPEG, PNG and WebP are rewritten container by container,
keeping only the segments/chunks that make or describe the picture (lists of what is kept, not of what is
personal: private chunks can hold anything) and the compressed picture data as it was -- no re-encoding, no loss.
A colour profile is kept when its ICC header and tag table account for all its bytes. The EXIF orientation is the
one tag kept (in a minimal EXIF block of its own), so a sideways-stored phone photo still shows upright everywhere
(XMP's ``tiff:Orientation`` turns nothing here, as in browsers: ``inference.images.exif_orientation``). GIF is
walked block by block too: frames, their timing and the looping block stay, every other extension goes. A BMP is
cut at the file size its header declares (anything appended after goes; its pixels, alpha included, stay). A TIFF
is always re-encoded losslessly from its pixels, turned upright (its first page: the one classified and shown):
it keeps its metadata in the same directory as its pixel layout and can point anywhere in the file, so only a
rewrite leaves nothing behind. A JPEG/PNG/WebP/BMP whose container cannot be walked (damaged but still decodable) is
re-encoded upright the same way. HEIC is already re-encoded without metadata at upload.

A kept block carries only what its format defines: fixed-size PNG and WebP chunks and JPEG tables, frames and
scan headers are cut to their size, IDAT data past the end of the picture's zlib stream, GIF sub-blocks after the
kept ones and a BMP's unused bytes (zeroed) go. Left as sent, as only re-encoding would reach them: bytes inside
the compressed picture data itself and the text of a real colour profile's tags.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageOps

from inference.images import ORIENTATION_TAG, exif_orientation, open_quietly

_EXIF_HEADER = b"Exif\x00\x00"
# JPEG markers that stand alone (no length): TEM and the restart markers.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
# The JPEG segments (other than APPn, handled one by one) that make the picture: frames (SOF0-15 but for DHT, JPG
# and DAC), Huffman and arithmetic-coding tables, quantisation tables, the restart interval and scans. Others (DNL,
# DHP, EXP, JPGn, reserved markers) are dropped: no decoder here needs them, and they can carry anything.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_KEPT_MARKERS = _JPEG_FRAME_MARKERS | {0xC4, 0xCC, 0xDA, 0xDB, 0xDD}
# Where the entropy-coded data after a start-of-scan ends: the first 0xFF not followed by a stuffed 0x00 or a
# restart marker. A C-level search: walking a 15 MB scan byte by byte in Python cost ~1 s.
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_KEPT_APP2 = b"ICC_PROFILE\x00"
# APP0 and APP14 are kept only as their fixed-size standard headers: JFIF's 14 bytes say the pixel density (its
# optional thumbnail, which can be another picture, is cut), Adobe's 12 say how colours are transformed. JFXX
# extensions (thumbnails) and anything longer go.
_JFIF = b"JFIF\x00"
_JFIF_HEADER_LENGTH = 14
_ADOBE = b"Adobe"
_ADOBE_HEADER_LENGTH = 12
# PNG chunks kept: the picture, its palette and transparency, what its colours and pixel size mean, and APNG's
# animation; eXIf is rewritten like JPEG's EXIF. A list of what is allowed: free text (tEXt, zTXt, iTXt), the time
# of the last edit and any private chunk (an application's own, which can hold anything) go.
_PNG_KEPT_CHUNKS = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"cICP", b"mDCv", b"cLLI"}
    | {b"sBIT", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT"}
)
# WebP chunks kept: the picture (lossy, lossless, alpha), the extended header, animation frames and the colour
# profile; EXIF is rewritten to its orientation; XMP and unknown chunks go, inside animation frames too.
_WEBP_KEPT_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_WEBP_FRAME_CHUNKS = frozenset({b"VP8 ", b"VP8L", b"ALPH"})
# The kept WebP chunks of a fixed size: the extended header and the animation's colour and loop count. Longer ones
# are cut to it.
_WEBP_CHUNK_SIZES = {b"VP8X": 10, b"ANIM": 6}
# An animation frame (ANMF) starts with 16 bytes of position, size, duration and flags, then its own chunks.
_WEBP_FRAME_HEADER = 16
# A colour profile (ICC.1 header): its first 4 bytes are its length, bytes 36-39 the signature "acsp". Anything
# else stored where a profile goes is not one, and is dropped. A PNG's profile is decompressed up to this size.
_ICC_SIGNATURE = b"acsp"
_ICC_TAGS_AT = 132  # the 128-byte header, then the tag count; the tag table's 12-byte entries follow
_ICC_MAX_BYTES = 16 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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
# GIF extensions kept: the graphic control block (a frame's delay and transparency) and the application blocks that
# only say how an animation loops; every other extension (comments, plain text, XMP, unknown labels) is dropped.
_GIF_GRAPHIC_CONTROL = 0xF9
_GIF_KEPT_APPLICATIONS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0"})


class _Unwalkable(ValueError):
    """The container structure is not what its format promises; the picture is re-encoded instead."""


def metadata_stripped(data: bytes, *, image_format: str) -> bytes:
    """``data`` without personal metadata, EXIF orientation kept; ``data`` itself when there is nothing to drop.

    ``image_format`` is Pillow's name of the decoded format (the file already passed validation, so it decodes).
    """
    try:
        if image_format in ("JPEG", "MPO"):
            stripped = _jpeg_stripped(data)
        elif image_format == "PNG":
            stripped = _png_stripped(data)
        elif image_format == "WEBP":
            stripped = _webp_stripped(data)
        elif image_format == "GIF":
            stripped = _gif_stripped(data)
        elif image_format == "BMP":
            stripped = _bmp_stripped(data)
        elif image_format == "TIFF":
            return _reencoded(data, image_format)
        else:
            return data
    except (_Unwalkable, IndexError, struct.error):
        return _reencoded(data, image_format)
    return data if stripped == data else stripped


def _minimal_exif(payload: bytes) -> bytes | None:
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
    rebuilt = minimal.tobytes()[len(_EXIF_HEADER) :]
    bare = payload[len(_EXIF_HEADER) :] if payload.startswith(_EXIF_HEADER) else payload
    return bare if bare == rebuilt else rebuilt


def _jpeg_stripped(data: bytes) -> bytes:
    """Keep SOI, tables, frame, scans, JFIF/Adobe/ICC segments and EOI; EXIF reduced to the orientation; drop
    XMP, IPTC/Photoshop, comments, maker segments, MPF and anything after the first picture's EOI (MPO's second
    pictures, trailers some phones append)."""
    if data[:2] != b"\xff\xd8":
        raise _Unwalkable("no JPEG start marker")
    out = [b"\xff\xd8"]
    profile_parts: list[tuple[int, bytes]] = []  # where each ICC segment went in ``out``, and its payload
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise _Unwalkable("expected a marker")
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            if profile_parts and not _jpeg_profile_valid([part for _, part in profile_parts]):
                for index, _ in profile_parts:
                    out[index] = b""
            return b"".join(out)
        if marker in _STANDALONE_MARKERS:
            out.append(bytes((0xFF, marker)))
            continue
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > len(data):
            raise _Unwalkable("segment runs past the end")
        payload = data[pos + 2 : pos + length]
        segment = b"\xff" + bytes((marker,)) + data[pos : pos + length]
        pos += length
        if marker == 0xDA:  # start of scan: the compressed data follows up to the next real marker
            found = _END_OF_SCAN.search(data, pos)
            if found is None:
                raise _Unwalkable("scan without an end")
            used = _jpeg_segment_used(marker, payload)
            out.append(_jpeg_segment(marker, payload[:used]) + data[pos : found.start()])
            pos = found.start()
        elif marker == 0xE1 and payload.startswith(_EXIF_HEADER):
            kept = _minimal_exif(payload)
            if kept is not None:
                body = _EXIF_HEADER + kept
                out.append(_jpeg_segment(0xE1, body))
        elif marker == 0xE2:
            if payload.startswith(_JPEG_KEPT_APP2):
                profile_parts.append((len(out), payload))
                out.append(segment)
        elif marker == 0xE0:
            if payload.startswith(_JFIF):
                out.append(_jfif_header_only(segment, payload))
        elif marker == 0xEE:
            if payload.startswith(_ADOBE) and len(payload) >= _ADOBE_HEADER_LENGTH:
                header = payload[:_ADOBE_HEADER_LENGTH]
                out.append(_jpeg_segment(0xEE, header))
        elif marker in _JPEG_KEPT_MARKERS:
            used = _jpeg_segment_used(marker, payload)
            out.append(segment if used == len(payload) else _jpeg_segment(marker, payload[:used]))
        # Everything else is dropped: JFXX, APP1 XMP, APP3-APP13 (IPTC, Photoshop, maker data), APP15, COM, DNL.


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    """A JPEG segment: its marker, length field and payload."""
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segment_used(marker: int, payload: bytes) -> int:
    """How many of a kept segment's payload bytes its tables or fields take: the rest is cut (a decoder never
    reads it, so it could hold anything)."""
    if marker in _JPEG_FRAME_MARKERS:  # precision, height, width, component count, 3 bytes a component
        return min(len(payload), 6 + 3 * payload[5])
    if marker == 0xDA:  # component count, 2 bytes a component, spectral selection and approximation
        return min(len(payload), 4 + 2 * payload[0])
    if marker == 0xDD:  # the restart interval
        return min(len(payload), 2)
    pos = 0
    while pos < len(payload):
        if marker == 0xDB:  # quantisation tables: precision/id, then 64 values of 1 or 2 bytes
            size = 1 + 64 * (1 + (payload[pos] >> 4))
        elif marker == 0xC4:  # Huffman tables: class/id, 16 counts, then that many symbols
            size = 17 + sum(payload[pos + 1 : pos + 17])
        else:  # DAC: arithmetic-coding conditioning, 2 bytes a table
            size = 2
        if pos + size > len(payload):
            break
        pos += size
    return pos


def _is_colour_profile(profile: bytes) -> bool:
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


def _jpeg_profile_valid(payloads: list[bytes]) -> bool:
    """Whether a JPEG's ICC segments (``ICC_PROFILE\\0``, sequence number, count, part) make one colour profile."""
    header = len(_JPEG_KEPT_APP2)
    parts = sorted((payload[header], payload[header + 2 :]) for payload in payloads if len(payload) > header + 2)
    if len(parts) != len(payloads) or [number for number, _ in parts] != list(range(1, len(parts) + 1)):
        return False
    return _is_colour_profile(b"".join(part for _, part in parts))


def _png_profile_cut(payload: bytes) -> bytes | None:
    """An ``iCCP`` chunk's payload (name, NUL, method 0, zlib data) up to the end of its zlib stream when that
    holds a colour profile, else ``None`` (the chunk is dropped)."""
    name_end = payload.find(b"\x00")
    if not 0 < name_end < 80 or payload[name_end + 1 : name_end + 2] != b"\x00":
        return None
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(payload[name_end + 2 :], _ICC_MAX_BYTES)
    except zlib.error:
        return None
    if not inflater.eof or not _is_colour_profile(profile):
        return None
    return payload[: len(payload) - len(inflater.unused_data)]


def _jfif_header_only(segment: bytes, payload: bytes) -> bytes:
    """The JFIF segment as it is when it has no thumbnail, else its header with the thumbnail cut (size 0x0)."""
    if len(payload) == _JFIF_HEADER_LENGTH and payload[12:14] == b"\x00\x00":
        return segment
    if len(payload) < _JFIF_HEADER_LENGTH:
        raise _Unwalkable("JFIF header cut short")
    header = payload[: _JFIF_HEADER_LENGTH - 2] + b"\x00\x00"
    return _jpeg_segment(0xE0, header)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_stripped(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise _Unwalkable("no PNG signature")
    out = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    colour_type = data[pos + 17] if len(data) > pos + 17 else 0  # IHDR comes first
    run: list[_PictureDataChunk] = []  # consecutive IDAT (or one frame's fdAT) chunks: one zlib stream
    while True:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise _Unwalkable("chunk runs past the end")
        payload = data[pos + 8 : pos + 8 + length]
        if run and kind != run[-1].kind:
            _png_run_cut(out, run)
            run = []
        if kind == b"eXIf":
            kept = _minimal_exif(payload)
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
        raise _Unwalkable("the picture data is not a zlib stream") from error
    if not inflater.eof:
        raise _Unwalkable("the picture data ends before its zlib stream does")
    return len(stream) - len(inflater.unused_data)


def _webp_stripped(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _Unwalkable("no WebP header")
    end_of_riff = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])
    chunks = _webp_chunks(data, 12, end_of_riff)
    kept: list[tuple[bytes, bytes]] = []
    has_exif = False
    for kind, payload in chunks:
        if kind == b"EXIF":
            minimal = _minimal_exif(payload)
            if minimal is not None:
                kept.append((kind, minimal))
                has_exif = True
        elif kind == b"ANMF":
            kept.append((kind, _webp_frame_stripped(payload)))
        elif kind in _WEBP_KEPT_CHUNKS and (kind != b"ICCP" or _is_colour_profile(payload)):
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
            raise _Unwalkable("chunk runs past the end")
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


def _gif_stripped(data: bytes) -> bytes:
    """The GIF with its frames and their timing (graphic control) and looping blocks only; every frame's bytes as
    they were."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise _Unwalkable("no GIF header")
    pos = 13 + _gif_colour_table_size(data[10])
    kept = bytearray(data[:pos])
    while True:
        introducer = data[pos]
        if introducer == 0x3B:  # trailer: anything after it is not part of the picture
            kept.append(0x3B)
            return bytes(kept)
        if introducer == 0x2C:  # image descriptor, optional local colour table, LZW code size, data sub-blocks
            start = pos
            pos += 10 + _gif_colour_table_size(data[pos + 9]) + 1
            pos = _gif_sub_blocks_end(data, pos)
            kept += data[start:pos]
        elif introducer == 0x21:  # extension: label, then sub-blocks
            start, label = pos, data[pos + 1]
            pos = _gif_sub_blocks_end(data, pos + 2)
            application = data[start + 3 : start + 14] if label == 0xFF and data[start + 2] == 11 else None
            if label == _GIF_GRAPHIC_CONTROL and data[start + 2] == 4:  # delay, disposal and transparency
                kept += data[start : start + 7] + b"\x00"
            elif label == 0xFF and application in _GIF_KEPT_APPLICATIONS and data[start + 14] == 3:
                kept += data[start : start + 18] + b"\x00"  # the header, then only the loop count's sub-block
            # Anything else goes: comments, plain text, application blocks such as XMP, labels no standard names,
            # and sub-blocks after the ones kept (no decoder reads them).
        else:
            raise _Unwalkable(f"unknown GIF block 0x{introducer:02x}")


def _bmp_stripped(data: bytes) -> bytes:
    """The BMP up to the file size its header declares (its pixels, colour table and any profile are inside it):
    whatever was appended after goes, the pixels stay as they were (alpha included, which Pillow cannot write)."""
    if data[:2] != b"BM" or len(data) < 14:
        raise _Unwalkable("no BMP header")
    declared, pixels_at = int.from_bytes(data[2:6], "little"), int.from_bytes(data[10:14], "little")
    if not 14 < pixels_at < declared <= len(data):
        raise _Unwalkable("no usable file size in the header")
    cut = _bmp_unused_zeroed(data[:declared], pixels_at)
    try:
        with open_quietly(cut) as image:
            image.load()
    except Exception as error:  # the declared size was wrong (some writers): rewrite from the pixels instead
        raise _Unwalkable("the declared size cuts the picture") from error
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


def _gif_colour_table_size(packed: int) -> int:
    return 3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """Where the sub-blocks starting at ``pos`` end (just past their zero-length terminator)."""
    while data[pos]:
        pos += 1 + data[pos]
    return pos + 1


def _reencoded(data: bytes, image_format: str) -> bytes:
    """Decode in full, turn upright, and save again without any metadata (lossless except for JPEG, from the
    pixels Pillow decodes: a TIFF of 16 bits a colour channel is stored at 8, as the model sees it)."""
    with open_quietly(data) as image:
        image.load()
        clean = ImageOps.exif_transpose(image) if exif_orientation(image) != 1 else image.copy()
        # The colour profile says what the pixel values mean (not who took the picture): kept, or wide-gamut
        # pictures would change colour; so does a palette's transparent entry.
        profile = image.info.get("icc_profile")
        colours = {"icc_profile": profile} if profile and _is_colour_profile(profile) else {}
        transparency = image.info.get("transparency")
    clean.info = {} if transparency is None else {"transparency": transparency}
    buffer = io.BytesIO()
    if image_format in ("JPEG", "MPO"):
        clean.convert("RGB").save(buffer, "JPEG", quality=92, **colours)
    elif image_format == "GIF":
        clean.save(buffer, "GIF")
    elif image_format == "TIFF":
        clean.save(buffer, "TIFF", compression="tiff_adobe_deflate", **colours)
    elif image_format == "BMP":
        clean.save(buffer, "BMP")
    else:
        clean.save(
            buffer,
            "WEBP" if image_format == "WEBP" else "PNG",
            **({"lossless": True} if image_format == "WEBP" else {}),
            **colours,
        )
    return buffer.getvalue()
