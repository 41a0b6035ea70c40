"""A shift: when one member of a workspace works, and on which of its accounts.

A shift's window has a time zone on the wire and is kept in UTC; it ends after it starts and
lasts at most a day (``MAX_LENGTH``), so that "what happened during this shift" is always a
bounded question. One member's shifts never overlap: each member has a stream of its own
shifts (``MemberShifts``), which refuses one that would. They live apart from the Workspace
stream because they are many (a year of a 50-member agency is ~18,000) and every workspace
command and key lookup replays that stream; whether the member may work, and on which
accounts, is still the workspace's to say (``Workspace.shift_scope``).

A shift's id names its member (``<memberId>.<32 hex>``, see ``make_shift_id``), so that the
stream holding it is found from the id alone, in the log, with no read model that may lag.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import Gone, IllegalState, InvalidValue

MAX_LENGTH = timedelta(hours=24)
MAX_ACCOUNTS = 100

# A member id as the workspace makes them (32 lowercase hex digits: application/workspaces.py),
# then a dot and 32 more for the shift itself.
_MEMBER_ID = re.compile(r"[0-9a-f]{32}")
_SHIFT_ID = re.compile(r"([0-9a-f]{32})\.([0-9a-f]{32})")


def is_member_id(member_id: str) -> bool:
    return _MEMBER_ID.fullmatch(member_id) is not None


def make_shift_id(member_id: str, suffix: str) -> str:
    """The id of a shift of ``member_id``; ``suffix`` (32 hex digits) tells it from its others."""
    made = f"{member_id}.{suffix}"
    if _SHIFT_ID.fullmatch(made) is None:
        raise ValueError(f"not a shift id: {made!r}")
    return made


def member_of_shift(shift_id: str) -> str | None:
    """The member whose shift ``shift_id`` is, or None if it is not a shift id at all."""
    parsed = _SHIFT_ID.fullmatch(shift_id)
    return parsed.group(1) if parsed else None


def member_shifts_stream_id(workspace_id: str, member_id: str) -> str:
    # A member id holds no ":" (``is_member_id``): the last one ends the workspace's id.
    return f"shifts-{workspace_id}:{member_id}"


class Shift(msgspec.Struct, frozen=True, kw_only=True):
    """One scheduled shift as its member's stream knows it (state rebuilt on replay)."""

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


class MemberShifts(BaseAggregate[str]):
    """One member's live shifts in one workspace (a cancelled one is gone)."""

    @staticmethod
    def create_id(workspace_id: str, member_id: str) -> str:
        return member_shifts_stream_id(workspace_id, member_id)

    class Event(DomainEvent):
        pass

    class Opened(Event, AggregateCreated):
        workspace_id: str
        member_id: str

    class Scheduled(Event):
        shift_id: str
        member_id: str
        starts_at: datetime
        ends_at: datetime
        accounts: tuple[str, ...] | None

    class Cancelled(Event):
        shift_id: str

    @classmethod
    def open(cls, workspace_id: str, member_id: str) -> MemberShifts:
        """The stream of a member's shifts, opened by its first one."""
        if not is_member_id(member_id):
            raise InvalidValue("member_id", "is not an active or invited member of the workspace")
        return cls(workspace_id=workspace_id, member_id=member_id)

    @event(Opened)
    def __init__(self, workspace_id: str, member_id: str) -> None:
        self.workspace_id = workspace_id
        self.member_id = member_id
        self.shifts: dict[str, Shift] = {}

    def schedule(
        self,
        *,
        suffix: str,
        starts_at: datetime,
        ends_at: datetime,
        accounts: tuple[str, ...] | None,
    ) -> Shift:
        """``accounts``: as the workspace allowed them (``Workspace.shift_scope``)."""
        starts, ends = window(starts_at, ends_at)
        made = make_shift_id(self.member_id, suffix)
        if made in self.shifts:
            raise IllegalState(f"shift {made} exists already")
        for other in self.shifts.values():
            if other.overlaps(starts, ends):
                raise IllegalState(
                    f"member {self.member_id} has shift {other.shift_id} from"
                    f" {other.starts_at.isoformat()} to {other.ends_at.isoformat()}"
                )
        self._scheduled(
            shift_id=made,
            member_id=self.member_id,
            starts_at=starts,
            ends_at=ends,
            accounts=accounts,
        )
        return self.shifts[made]

    @event(Scheduled)
    def _scheduled(
        self,
        shift_id: str,
        member_id: str,
        starts_at: datetime,
        ends_at: datetime,
        accounts: tuple[str, ...] | None,
    ) -> None:
        self.shifts[shift_id] = Shift(
            shift_id=shift_id,
            member_id=member_id,
            starts_at=starts_at,
            ends_at=ends_at,
            accounts=accounts,
        )

    def cancel(self, shift_id: str) -> None:
        if shift_id not in self.shifts:
            raise Gone(f"shift {shift_id}")
        self._cancelled(shift_id=shift_id)

    @event(Cancelled)
    def _cancelled(self, shift_id: str) -> None:
        del self.shifts[shift_id]
