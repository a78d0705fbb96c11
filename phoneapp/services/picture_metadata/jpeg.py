"""JPEG (and MPO's first picture), segment by segment: tables, frames and scans kept as they are, JFIF and Adobe
headers cut to their fixed size, a real colour profile kept, EXIF reduced to the orientation, the rest dropped.
"""

from __future__ import annotations

import re
import struct

from phoneapp.services.picture_metadata.shared import EXIF_HEADER, Unwalkable, is_colour_profile, minimal_exif

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


def jpeg_stripped(data: bytes) -> bytes:
    """Keep SOI, tables, frame, scans, JFIF/Adobe/ICC segments and EOI; EXIF reduced to the orientation; drop
    XMP, IPTC/Photoshop, comments, maker segments, MPF and anything after the first picture's EOI (MPO's second
    pictures, trailers some phones append)."""
    if data[:2] != b"\xff\xd8":
        raise Unwalkable("no JPEG start marker")
    out = [b"\xff\xd8"]
    profile_parts: list[tuple[int, bytes]] = []  # where each ICC segment went in ``out``, and its payload
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise Unwalkable("expected a marker")
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
            raise Unwalkable("segment runs past the end")
        payload = data[pos + 2 : pos + length]
        segment = b"\xff" + bytes((marker,)) + data[pos : pos + length]
        pos += length
        if marker == 0xDA:  # start of scan: the compressed data follows up to the next real marker
            found = _END_OF_SCAN.search(data, pos)
            if found is None:
                raise Unwalkable("scan without an end")
            used = _jpeg_segment_used(marker, payload)
            out.append(_jpeg_segment(marker, payload[:used]) + data[pos : found.start()])
            pos = found.start()
        elif marker == 0xE1 and payload.startswith(EXIF_HEADER):
            kept = minimal_exif(payload)
            if kept is not None:
                body = EXIF_HEADER + kept
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


def _jpeg_profile_valid(payloads: list[bytes]) -> bool:
    """Whether a JPEG's ICC segments (``ICC_PROFILE\\0``, sequence number, count, part) make one colour profile."""
    header = len(_JPEG_KEPT_APP2)
    parts = sorted((payload[header], payload[header + 2 :]) for payload in payloads if len(payload) > header + 2)
    if len(parts) != len(payloads) or [number for number, _ in parts] != list(range(1, len(parts) + 1)):
        return False
    return is_colour_profile(b"".join(part for _, part in parts))


def _jfif_header_only(segment: bytes, payload: bytes) -> bytes:
    """The JFIF segment as it is when it has no thumbnail, else its header with the thumbnail cut (size 0x0)."""
    if len(payload) == _JFIF_HEADER_LENGTH and payload[12:14] == b"\x00\x00":
        return segment
    if len(payload) < _JFIF_HEADER_LENGTH:
        raise Unwalkable("JFIF header cut short")
    header = payload[: _JFIF_HEADER_LENGTH - 2] + b"\x00\x00"
    return _jpeg_segment(0xE0, header)
