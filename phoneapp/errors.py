"""Errors of the read side: what a selector raises when the caller asked for a row it cannot have.

Selectors know nothing of HTTP; the edges answer these with 404 (pages: ``phoneapp.web.errors.NotFoundMiddleware``,
API: ``phoneapp.api.errors.exception_handler``). Someone else's upload raises the same error as a missing one, so
an answer never tells whether an id exists.
"""

from __future__ import annotations


class NotFound(LookupError):
    """The row does not exist, or the caller may not see it; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadNotFound(NotFound):
    """No such upload among those the caller may see (or, in the review queue, no such classified upload)."""
