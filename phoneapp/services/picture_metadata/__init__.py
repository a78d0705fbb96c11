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

One module a format (``jpeg``, ``png``, ``webp``, ``gif``, ``bmp``), what they share in ``shared`` (EXIF orientation,
colour profiles, :class:`~phoneapp.services.picture_metadata.shared.Unwalkable`), re-encoding in ``reencode``.
"""

from __future__ import annotations

import struct

from phoneapp.services.picture_metadata.bmp import bmp_stripped
from phoneapp.services.picture_metadata.gif import gif_stripped
from phoneapp.services.picture_metadata.jpeg import jpeg_stripped
from phoneapp.services.picture_metadata.png import png_stripped
from phoneapp.services.picture_metadata.reencode import reencoded
from phoneapp.services.picture_metadata.shared import Unwalkable
from phoneapp.services.picture_metadata.webp import webp_stripped


def metadata_stripped(data: bytes, *, image_format: str) -> bytes:
    """``data`` without personal metadata, EXIF orientation kept; ``data`` itself when there is nothing to drop.

    ``image_format`` is Pillow's name of the decoded format (the file already passed validation, so it decodes).
    """
    try:
        if image_format in ("JPEG", "MPO"):
            stripped = jpeg_stripped(data)
        elif image_format == "PNG":
            stripped = png_stripped(data)
        elif image_format == "WEBP":
            stripped = webp_stripped(data)
        elif image_format == "GIF":
            stripped = gif_stripped(data)
        elif image_format == "BMP":
            stripped = bmp_stripped(data)
        elif image_format == "TIFF":
            return reencoded(data, image_format)
        else:
            return data
    except (Unwalkable, IndexError, struct.error):
        return reencoded(data, image_format)
    return data if stripped == data else stripped
