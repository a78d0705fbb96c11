"""Reading the ``Idempotency-Key`` header of an upload request (phoneapp/services/upload_requests.py keeps them)."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.request import Request

HEADER = "Idempotency-Key"
MAX_LENGTH = 255  # UploadRequest.key


def idempotency_key(request: Request) -> str | None:
    """The request's key, or ``None`` when it sent none; :class:`ParseError` (400) for one that cannot be a key.

    Taken bare (``Idempotency-Key: 8e03978e-…``, as Stripe's clients send it) or as the IETF draft's quoted string
    (``"8e03978e-…"``, the quotes dropped): printable ASCII, 1 to 255 characters."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key.strip() or len(key) > MAX_LENGTH or not all(" " <= character <= "~" for character in key):
        raise ParseError(
            f"The {HEADER} header must be 1 to {MAX_LENGTH} printable ASCII characters (a UUID is a good key); "
            "nothing was stored."
        )
    return key
