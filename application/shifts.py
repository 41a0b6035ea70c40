"""Shifts: who of the workspace works when, on which accounts (domain/shift.py).

Scheduled and cancelled on the Workspace aggregate, which knows its members and their shifts:
an overlap is refused on the log, never on the shifts view. Whoever schedules or cancels acts
within its own accounts only, as whoever invites does (application/workspaces.py): a shift
reaching beyond them is refused (403). A shift is seen by those whose accounts it touches
(``sees``, the list's rule too): cancelling one that touches none of them is not found.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from application.context import CommandContext
from application.errors import Forbidden, NotFound
from application.ports import EventStore
from application.workspaces import on_workspace
from domain.shift import Shift
from domain.workspace import Workspace


class ScheduleShift(msgspec.Struct, frozen=True, kw_only=True):
    workspace_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime
    accounts: tuple[str, ...] | Literal["all"] | None  # None: the member's own accounts
    scheduler_accounts: tuple[str, ...] | None  # the caller's scope (None: every account)
    now: datetime
    # Made here unless the caller's Idempotency-Key decides it.
    shift_id: str | None = None


class Scheduled(msgspec.Struct, frozen=True):
    shift: Shift
    position: int


async def schedule_shift(
    cmd: ScheduleShift, ctx: CommandContext, *, store: EventStore
) -> Scheduled:
    shift_id = cmd.shift_id or str(uuid.uuid4())

    async def decide(workspace: Workspace) -> Shift:
        shift = workspace.schedule_shift(
            shift_id=shift_id,
            member_id=cmd.member_id,
            starts_at=cmd.starts_at,
            ends_at=cmd.ends_at,
            accounts=cmd.accounts,
            now=cmd.now,
        )
        # Refused after the aggregate decided (the accounts a shift covers are known only
        # then) and before anything is appended: the raise discards the decision.
        if not _within(shift.accounts, cmd.scheduler_accounts):
            raise Forbidden("a member cannot schedule a shift on accounts outside its own scope")
        return shift

    handled = await on_workspace(store, cmd.workspace_id, decide, ctx)
    return Scheduled(handled.decision, handled.position)


async def cancel_shift(
    workspace_id: str,
    shift_id: str,
    canceller_accounts: tuple[str, ...] | None,
    ctx: CommandContext,
    *,
    store: EventStore,
) -> int:
    async def decide(workspace: Workspace) -> None:
        shift = workspace.shifts.get(shift_id)
        if shift is not None and not sees(canceller_accounts, shift.accounts):
            raise NotFound(f"shift {shift_id}")
        if shift is not None and not _within(shift.accounts, canceller_accounts):
            raise Forbidden("a member cannot cancel a shift on accounts outside its own scope")
        workspace.cancel_shift(shift_id)

    return int((await on_workspace(store, workspace_id, decide, ctx)).position)


def _within(accounts: tuple[str, ...] | None, scope: tuple[str, ...] | None) -> bool:
    """Whether ``accounts`` (None: all) lie within ``scope`` (None: all)."""
    if scope is None:
        return True
    return accounts is not None and set(accounts) <= set(scope)


def sees(scope: tuple[str, ...] | None, accounts: tuple[str, ...] | None) -> bool:
    """Whether a caller of ``scope`` sees a shift on ``accounts`` (None: all, each)."""
    return scope is None or accounts is None or bool(set(accounts) & set(scope))
