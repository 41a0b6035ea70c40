"""Shifts live on their member's stream, not the workspace's: however many are scheduled, a
workspace command and the key lookup's fallback (``member_access``) replay the same few
workspace events; on the Postgres event store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters import bootstrap
from application import shifts, workspaces
from application.permissions import permissions_of
from application.ports import RecordedEvent
from domain.errors import IllegalState
from domain.shift import MemberShifts, member_shifts_stream_id
from domain.workspace import workspace_stream_id
from tests.support.fakes import creator_context

pytestmark = pytest.mark.timeout(120)

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
SHIFTS = 200


class _LoadsSeen:
    """The store, recording each stream ``load`` read and how many events it returned."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.loads: list[tuple[str, int]] = []

    async def load(self, stream_id: str, **kwargs: Any) -> Sequence[RecordedEvent]:
        recorded = await self._store.load(stream_id, **kwargs)
        self.loads.append((stream_id, len(recorded)))
        return list(recorded)


async def test_two_hundred_shifts_leave_the_workspace_stream_as_it_was(
    container: bootstrap.Container,
) -> None:
    store = container.events
    ctx = creator_context()
    workspace_id = ctx.tenant
    invited = await workspaces.invite_member(
        workspaces.InviteMember(
            workspace_id=workspace_id,
            role="chatter",
            accounts=None,
            grantor=workspaces.Grantor(permissions_of("creator"), None),
            now=datetime.now(UTC),
        ),
        ctx,
        store=store,
    )
    await workspaces.accept_invite(
        invited.token, datetime.now(UTC), ctx, store=store, keys=container.member_keys
    )
    member_id = invited.member_id
    workspace_events = await store.load(workspace_stream_id(workspace_id))

    def schedule(day: int) -> shifts.ScheduleShift:
        return shifts.ScheduleShift(
            workspace_id=workspace_id,
            member_id=member_id,
            starts_at=MONDAY + timedelta(days=day, hours=8),
            ends_at=MONDAY + timedelta(days=day, hours=16),
            accounts=None,
            scheduler_accounts=None,
            now=datetime.now(UTC),
        )

    made = [
        (await shifts.schedule_shift(schedule(day), ctx, store=store)).shift
        for day in range(SHIFTS)
    ]
    with pytest.raises(IllegalState):
        await shifts.schedule_shift(schedule(SHIFTS - 1), ctx, store=store)  # an overlap
    await shifts.cancel_shift(workspace_id, made[0].shift_id, None, ctx, store=store)

    # The workspace's stream holds what it held; every shift is on the member's own.
    after = await store.load(workspace_stream_id(workspace_id))
    assert [r.event_id for r in after] == [r.event_id for r in workspace_events]
    own = await store.load(member_shifts_stream_id(workspace_id, member_id))
    assert len(own) == 1 + SHIFTS + 1  # opened, scheduled each, one cancelled
    assert isinstance(own[0].event, MemberShifts.Opened)
    assert {r.metadata.tenant for r in own} == {workspace_id}
    assert all(s.shift_id.startswith(f"{member_id}.") for s in made)

    # The key lookup's fallback reads the workspace stream only, a handful of events.
    seen = _LoadsSeen(store)
    access = await workspaces.member_access(seen, workspace_id, member_id)  # type: ignore[arg-type]
    assert access is not None
    assert access.member_id == member_id
    assert seen.loads == [(workspace_stream_id(workspace_id), len(workspace_events))]
    assert len(workspace_events) == 3  # founded, invited, joined
