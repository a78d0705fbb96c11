"""Domain errors. Each carries a message that is safe to show to the user; one place maps them to HTTP."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base class; ``status_code`` is the HTTP status the web layer answers with."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUpload(DomainError):
    """A file in an upload request is not a picture we accept (the whole request is refused).

    ``reason`` is the message without the file's name; ``refused`` names each file refused by its place in the
    request, so a client can drop those parts, which share a name as often as not (empty when the request itself
    was refused: no file, too many files)."""

    def __init__(self, message: str, *, file_name: str = "", refused: list[RefusedFile] | None = None) -> None:
        super().__init__(f"{file_name}: {message}" if file_name else message)
        self.file_name = file_name
        self.reason = message
        self.refused = refused or []


class UploadTooLarge(InvalidUpload):
    status_code = 413


@dataclass(frozen=True)
class RefusedFile:
    """One file refused in a request of several: its place among the request's files (from 0), name and why."""

    index: int
    name: str
    error: str


class OwnerGone(DomainError):
    """The account an upload was being stored for was deleted meanwhile (its owner, in another tab): nothing of
    the upload is kept."""

    status_code = 403


class NoActiveModel(DomainError):
    """No model version is registered and active, so nothing can be classified."""

    status_code = 503


class ClassificationUnavailable(RuntimeError):
    """The model cannot be used right now (missing, corrupt, no active version); worth retrying later.

    Not a :class:`DomainError`: no user request sees it; the classification task retries on it, then gives up."""


class InvalidCredentials(DomainError):
    """A username and password that do not log anyone in (``POST /api/token/``)."""


class ServiceUnavailable(DomainError):
    """A service the request needs (storage, database) is failing right now; the request changed nothing and can
    be sent again later. The web layer answers 503 with ``Retry-After``."""

    status_code = 503


# What both edges put in ``Retry-After`` on a 503: a database restart or failover takes seconds to tens of
# seconds; clients should not hammer it meanwhile.
RETRY_AFTER_SECONDS = 30


class StorageUnavailable(ServiceUnavailable):
    """Pictures cannot be written (disk full, folder not writable, object store down)."""

    def __init__(
        self, message: str = "Pictures cannot be stored right now; nothing was saved. Try again shortly."
    ) -> None:
        super().__init__(message)


class RetrainError(DomainError):
    """The retrain cannot run or did not produce a model; nothing was registered."""


class EvaluationRefused(DomainError):
    """A model version cannot be measured: no readable labelled pictures, a data folder that cannot be read, or the
    version's files cannot be loaded. Nothing was measured."""


class NothingToEvaluate(EvaluationRefused):
    """Not one readable labelled picture to measure a version on (the caller says where more can come from)."""
