"""A shift: when one member of a workspace works, and on which of its accounts.

A shift's window has a time zone on the wire and is kept in UTC; it ends after it starts and
lasts at most a day (``MAX_LENGTH``), so that "what happened during this shift" is always a
bounded question. One member's shifts never overlap; the Workspace aggregate holds its shifts
and refuses one that would (domain/workspace.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from domain.errors import InvalidValue

MAX_LENGTH = timedelta(hours=24)
MAX_ACCOUNTS = 100


class Shift(msgspec.Struct, frozen=True, kw_only=True):
    """One scheduled shift as the workspace knows it (state rebuilt on replay, not an event)."""

    shift_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime
    accounts: tuple[str, ...] | None  # None: every account of the workspace

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        """Windows are half-open: a shift ending at 08:00 and one starting then do not."""
        return self.starts_at < ends_at and starts_at < self.ends_at


def window(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """The window in UTC, or InvalidValue naming the field at fault."""
    starts = _utc("starts_at", starts_at)
    ends = _utc("ends_at", ends_at)
    if ends <= starts:
        raise InvalidValue("ends_at", "must be after the shift's start")
    if ends - starts > MAX_LENGTH:
        raise InvalidValue("ends_at", "must be at most 24 hours after the shift's start")
    return starts, ends


def shift_accounts(
    asked: tuple[str, ...] | Literal["all"] | None, member: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """The accounts a shift covers (None: all), within what the ``member`` may act on:
    ``asked`` names accounts of the workspace (checked by the caller), says "all", or is None
    for the member's own scope."""
    if asked is None:
        return member
    if asked == "all":
        if member is not None:
            raise InvalidValue("accounts", "the member may not act on every account")
        return None
    if not 0 < len(asked) <= MAX_ACCOUNTS:
        raise InvalidValue("accounts", f'must name 1 to {MAX_ACCOUNTS} accounts, or be "all"')
    beyond = [a for a in asked if member is not None and a not in member]
    if beyond:
        raise InvalidValue("accounts", f"the member may not act on {beyond[0]}")
    return asked


def _utc(field: str, at: datetime) -> datetime:
    if at.tzinfo is None:
        raise InvalidValue(field, "must carry a time zone (e.g. 2026-01-01T08:00:00Z)")
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise InvalidValue(field, "is out of range") from None
