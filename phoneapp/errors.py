"""Errors of rows the caller cannot have: what a selector raises when asked for one, and what a service raises when
the row it was handed went away meanwhile (a review decision on an upload its owner deleted as the reviewer decided).

Selectors and services know nothing of HTTP; the edges answer these with 404 (pages:
``phoneapp.web.errors.NotFoundMiddleware``, API: ``phoneapp.api.errors.exception_handler``). Someone else's upload
raises the same error as a missing one, so an answer never tells whether an id exists.
"""

from __future__ import annotations


class NotFound(LookupError):
    """The row does not exist, or the caller may not see it; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadNotFound(NotFound):
    """No such upload among those the caller may see (or, in the review queue, no such classified upload)."""
