"""Shifts: who of the workspace works when, on which accounts (domain/shift.py).

Each member's shifts are a stream of their own (``MemberShifts``), which refuses an overlap on
the log, never on the shifts view; the Workspace stream says whether the member may work and
on which accounts. Scheduling reads both and appends the shift while holding the workspace's
stream at the version read (a write without events, as an assignment does:
application/conversations.py): a member removed, or any other change to the workspace, between
the read and the append makes it a conflict, and the command runs again on what the log says
then. Cancelling needs only the member's stream, named by the shift's id.

Whoever schedules or cancels acts within its own accounts only, as whoever invites does
(application/workspaces.py): a shift reaching beyond them is refused (403). A shift is seen by
those whose accounts it touches (``sees``, the list's rule too): cancelling one that touches
none of them is not found.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal, cast

import msgspec

from application.context import CommandContext
from application.errors import Forbidden, NotFound
from application.ports import EventStore, StreamWrite
from application.streams import Loaded, handle, load
from application.workspaces import STREAM_TYPE as WORKSPACE_STREAM
from application.workspaces import in_workspace
from domain.base import DomainEvent
from domain.errors import InvalidValue
from domain.shift import MemberShifts, Shift, member_of_shift, member_shifts_stream_id
from domain.workspace import Workspace, workspace_stream_id

STREAM_TYPE = "member_shifts"


class ScheduleShift(msgspec.Struct, frozen=True, kw_only=True):
    workspace_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime
    accounts: tuple[str, ...] | Literal["all"] | None  # None: the member's own accounts
    scheduler_accounts: tuple[str, ...] | None  # the caller's scope (None: every account)
    now: datetime
    # The shift id's own part (32 hex digits), made here unless the caller's Idempotency-Key
    # decides it.
    suffix: str | None = None


class Scheduled(msgspec.Struct, frozen=True):
    shift: Shift
    position: int


async def schedule_shift(
    cmd: ScheduleShift, ctx: CommandContext, *, store: EventStore
) -> Scheduled:
    suffix = cmd.suffix or secrets.token_hex(16)
    ctx = in_workspace(ctx, cmd.workspace_id)

    async def decide(shifts: MemberShifts) -> tuple[Shift, StreamWrite]:
        workspace = await _workspace(store, cmd.workspace_id)
        if workspace is None:  # never written to: a workspace without members
            raise InvalidValue("member_id", "is not an active or invited member of the workspace")
        accounts = workspace.shift_scope(cmd.member_id, cmd.accounts, now=cmd.now)
        if not _within(accounts, cmd.scheduler_accounts):
            raise Forbidden("a member cannot schedule a shift on accounts outside its own scope")
        shift = shifts.schedule(
            suffix=suffix, starts_at=cmd.starts_at, ends_at=cmd.ends_at, accounts=accounts
        )
        return shift, StreamWrite(workspace.id, WORKSPACE_STREAM, [], workspace.version)

    async def append(shifts: MemberShifts, decided: tuple[Shift, StreamWrite]) -> int | None:
        pending = cast(list[DomainEvent], shifts.collect_events())
        expected = pending[0].originator_version - 1
        mine = StreamWrite(shifts.id, STREAM_TYPE, pending, expected)
        positions = await store.append_all([mine, decided[1]], metadata=ctx.metadata())
        return positions[-1]

    handled = await handle(
        store,
        member_shifts_stream_id(cmd.workspace_id, cmd.member_id),
        decide,
        ctx,
        stream_type=STREAM_TYPE,
        load_stream=lambda: _load_or_open(store, cmd.workspace_id, cmd.member_id),
        append=append,
    )
    return Scheduled(handled.decision[0], handled.position)


async def cancel_shift(
    workspace_id: str,
    shift_id: str,
    canceller_accounts: tuple[str, ...] | None,
    ctx: CommandContext,
    *,
    store: EventStore,
) -> int:
    """NotFound for an id that names no shift of the workspace (or none the caller sees)."""
    member_id = member_of_shift(shift_id)
    if member_id is None:
        raise NotFound(f"shift {shift_id}")

    async def decide(shifts: MemberShifts) -> None:
        shift = shifts.shifts.get(shift_id)
        if shift is not None and not sees(canceller_accounts, shift.accounts):
            raise NotFound(f"shift {shift_id}")
        if shift is not None and not _within(shift.accounts, canceller_accounts):
            raise Forbidden("a member cannot cancel a shift on accounts outside its own scope")
        shifts.cancel(shift_id)

    stream_id = member_shifts_stream_id(workspace_id, member_id)
    ctx = in_workspace(ctx, workspace_id)
    handled = await handle(store, stream_id, decide, ctx, stream_type=STREAM_TYPE)
    return handled.position


async def _load_or_open(store: EventStore, workspace_id: str, member_id: str) -> Loaded:
    try:
        return await load(
            store, member_shifts_stream_id(workspace_id, member_id), tenant=workspace_id
        )
    except NotFound:
        return MemberShifts.open(workspace_id, member_id), 0


async def _workspace(store: EventStore, workspace_id: str) -> Workspace | None:
    try:
        workspace, _ = await load(store, workspace_stream_id(workspace_id), tenant=workspace_id)
    except NotFound:
        return None
    return cast(Workspace, workspace)


def _within(accounts: tuple[str, ...] | None, scope: tuple[str, ...] | None) -> bool:
    """Whether ``accounts`` (None: all) lie within ``scope`` (None: all)."""
    if scope is None:
        return True
    return accounts is not None and set(accounts) <= set(scope)


def sees(scope: tuple[str, ...] | None, accounts: tuple[str, ...] | None) -> bool:
    """Whether a caller of ``scope`` sees a shift on ``accounts`` (None: all, each)."""
    return scope is None or accounts is None or bool(set(accounts) & set(scope))
