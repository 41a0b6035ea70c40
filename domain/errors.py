"""The domain's error taxonomy; the HTTP layer maps each kind to one status code once."""

from __future__ import annotations


class DomainError(Exception):
    """A command that the domain refuses."""


class InvalidValue(DomainError):
    """A value breaks a rule of the domain (422 at the API)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IllegalState(DomainError):
    """The command is well formed but not allowed in the aggregate's current state (409)."""


class Gone(DomainError):
    """The aggregate was deleted; it no longer accepts commands (404 at the API)."""
