"""Why Django refused to read a request's body (too many files or fields, form data too large), in words: the one
wording the pages' ``handler400`` and the API's exception handler share, below both edges."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent


def refused_request(exception: Exception | None) -> tuple[int, str] | None:
    """(status, message) for a request Django refused while reading its body (too many files or fields, form data
    too large); None for anything else. Shared by ``handler400`` and the API's exception handler, which answers
    these itself so that the API speaks JSON even where Django would show its debug page (``DEBUG``)."""
    if isinstance(exception, TooManyFilesSent):
        return 400, f"Too many files: at most {settings.UPLOAD_MAX_FILES} per upload."
    if isinstance(exception, RequestDataTooBig):
        return 413, "The form data is too large; send pictures as files in the 'image' field."
    if isinstance(exception, TooManyFieldsSent):
        return 400, "Too many form fields."
    return None
