"""Errors the application layer raises; adapters translate their own failures into these."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.ports import ClaimHolder


class ApplicationError(Exception):
    pass


class NotFound(ApplicationError):
    """No such thing for this tenant (404). Another tenant's data is reported the same way."""


class ConcurrencyError(ApplicationError):
    """The stream moved on since it was read: the expected version is stale (409)."""


class Unauthorized(ApplicationError):
    """No valid credentials (401)."""


class Forbidden(ApplicationError):
    """Valid credentials without the right role (403)."""


class ProjectionLagging(ApplicationError):
    """A read-your-writes query waited its bound and the read model is still behind (503)."""


class AlreadyProcessed(ApplicationError):
    """A command that takes effect once (a webhook event) was already processed."""


class MessageIdReused(ConcurrencyError):
    """A message id this tenant already used, asked for again with another message (409):
    the first message stands, the second is refused rather than silently dropped."""


class ClaimTaken(ApplicationError):
    """A unique claim (``key``) is held by another stream of the tenant: nothing was appended.
    The caller decides, in the log, whether the holder still holds it."""

    def __init__(self, key: str, holder: ClaimHolder) -> None:
        super().__init__(f"claimed by {holder.stream_id}")  # never the key: personal data
        self.key = key
        self.holder = holder
