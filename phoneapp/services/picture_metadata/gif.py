"""GIF, block by block: frames, their timing and the looping block kept as they are, every other extension dropped."""

from __future__ import annotations

from phoneapp.services.picture_metadata.shared import Unwalkable

# GIF extensions kept: the graphic control block (a frame's delay and transparency) and the application blocks that
# only say how an animation loops; every other extension (comments, plain text, XMP, unknown labels) is dropped.
_GIF_GRAPHIC_CONTROL = 0xF9
_GIF_KEPT_APPLICATIONS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0"})


def gif_stripped(data: bytes) -> bytes:
    """The GIF with its frames and their timing (graphic control) and looping blocks only; every frame's bytes as
    they were."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise Unwalkable("no GIF header")
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
            raise Unwalkable(f"unknown GIF block 0x{introducer:02x}")


def _gif_colour_table_size(packed: int) -> int:
    return 3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """Where the sub-blocks starting at ``pos`` end (just past their zero-length terminator)."""
    while data[pos]:
        pos += 1 + data[pos]
    return pos + 1
