"""Assignment and shifts against the in-memory event store and as pure rules: an assignment
and a shift decide on the workspace as the log has it at the append; a shift's window, scope
and id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application import shifts, workspaces
from application.context import CommandContext
from application.conversations import AssignConversation, assign_conversation
from application.errors import Forbidden, NotFound
from application.permissions import permissions_of
from application.ports import StreamWrite
from domain.conversation import Conversation
from domain.errors import Gone, IllegalState, InvalidValue
from domain.shift import (
    MemberShifts,
    Shift,
    is_member_id,
    make_shift_id,
    member_of_shift,
    member_shifts_stream_id,
    shift_accounts,
    window,
)
from tests.support.fakes import InMemoryEventStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = workspaces.Grantor(permissions_of("creator"), None)


async def _joined(
    store: InMemoryEventStore, ctx: CommandContext, accounts: tuple[str, ...] | None = None
) -> str:
    invited = await workspaces.invite_member(
        workspaces.InviteMember(
            workspace_id=ctx.tenant, role="chatter", accounts=accounts, grantor=OWNER, now=NOW
        ),
        ctx,
        store=store,
    )
    await workspaces.accept_invite(invited.token, NOW, ctx, store=store, keys=_NoKeys())
    return invited.member_id


class _NoKeys:
    async def create(self, *, workspace_id: str, member_id: str) -> tuple[str, str]:
        return "key", "key-id"

    async def delete(self, key_id: str) -> None: ...

    async def revoke_member(self, member_id: str) -> None: ...


async def _conversation(store: InMemoryEventStore, ctx: CommandContext) -> int:
    conversation = Conversation.start(
        conversation_id=7, tenant=ctx.tenant, fan_id=1, platform="onlyfans"
    )
    await store.append(
        conversation.id,
        "conversation",
        list(conversation.collect_events()),
        expected_version=0,
        metadata=ctx.metadata(),
    )
    return 7


def _assign(member_id: str | None, ctx: CommandContext) -> AssignConversation:
    return AssignConversation(conversation_id=7, workspace_id=ctx.tenant, member_id=member_id)


async def test_an_assignment_as_it_is_appends_nothing(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    await _conversation(store, alice)
    member_id = await _joined(store, alice)
    first = await assign_conversation(_assign(member_id, alice), alice, store=store)
    count = len(store.log)
    again = await assign_conversation(_assign(member_id, alice), alice, store=store)
    assert len(store.log) == count
    assert again.position == first.position
    assert again.conversation.assigned_to == member_id
    await assign_conversation(_assign(None, alice), alice, store=store)
    assert isinstance(store.log[-1].event, Conversation.Assigned)
    assert store.log[-1].event.member_id is None


async def test_a_removal_committed_after_the_read_refuses_the_assignment(
    alice: CommandContext,
) -> None:
    """The append holds the workspace at the version read: the removal that lands in between
    makes it a conflict, and the retry reads the member as removed."""
    store = _RemovingFirst()
    await _conversation(store, alice)
    member_id = await _joined(store, alice)
    store.remove = (alice, member_id)
    with pytest.raises(InvalidValue) as refused:
        await assign_conversation(_assign(member_id, alice), alice, store=store)
    assert refused.value.field == "member_id"
    assert not [r for r in store.log if isinstance(r.event, Conversation.Assigned)]


class _RemovingFirst(InMemoryEventStore):
    """Removes ``remove``'s member just before the first append of several streams."""

    remove: tuple[CommandContext, str] | None = None

    async def append_all(self, writes: Sequence[StreamWrite], **kwargs: Any) -> list[int]:
        if self.remove is not None:
            ctx, member_id = self.remove
            self.remove = None
            await workspaces.remove_member(ctx.tenant, member_id, ctx, store=self, keys=_NoKeys())
        return await super().append_all(writes, **kwargs)


async def test_a_member_of_other_accounts_is_not_assigned_and_another_tenant_finds_nothing(
    store: InMemoryEventStore, alice: CommandContext, bob: CommandContext
) -> None:
    await _conversation(store, alice)
    await workspaces.add_account(alice.tenant, "acct-b", "Bea", alice, store=store)
    elsewhere = await _joined(store, alice, ("acct-b",))
    with pytest.raises(InvalidValue):
        await assign_conversation(_assign(elsewhere, alice), alice, store=store)
    with pytest.raises(NotFound):
        await assign_conversation(_assign(None, bob), bob, store=store)


def test_a_window_is_aware_ordered_and_at_most_a_day() -> None:
    start = NOW
    assert window(start, start + timedelta(hours=24)) == (start, start + timedelta(hours=24))
    for end, field in (
        (start, "ends_at"),
        (start - timedelta(minutes=1), "ends_at"),
        (start + timedelta(hours=24, seconds=1), "ends_at"),
    ):
        with pytest.raises(InvalidValue) as refused:
            window(start, end)
        assert refused.value.field == field
    with pytest.raises(InvalidValue) as naive:
        window(start.replace(tzinfo=None), start)
    assert naive.value.field == "starts_at"


def test_shifts_overlap_on_half_open_windows() -> None:
    shift = Shift(
        shift_id="s", member_id="m", starts_at=NOW, ends_at=NOW + timedelta(hours=8), accounts=None
    )
    assert shift.overlaps(NOW + timedelta(hours=7), NOW + timedelta(hours=9))
    assert shift.overlaps(NOW - timedelta(hours=1), NOW + timedelta(hours=9))
    assert not shift.overlaps(NOW + timedelta(hours=8), NOW + timedelta(hours=9))
    assert not shift.overlaps(NOW - timedelta(hours=1), NOW)


def test_a_shift_covers_the_members_accounts_unless_told_fewer() -> None:
    assert shift_accounts(None, ("a", "b")) == ("a", "b")
    assert shift_accounts(None, None) is None
    assert shift_accounts("all", None) is None
    assert shift_accounts(("a",), ("a", "b")) == ("a",)
    for asked in ("all", ("c",), ()):
        with pytest.raises(InvalidValue):
            shift_accounts(asked, ("a", "b"))


async def test_shifts_are_scheduled_within_the_schedulers_scope_and_cancelled_once(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    member_id = await _joined(store, alice)

    def schedule(hours: int, scope: tuple[str, ...] | None, **more: Any) -> Any:
        return shifts.schedule_shift(
            shifts.ScheduleShift(
                workspace_id=alice.tenant,
                member_id=member_id,
                starts_at=NOW + timedelta(hours=hours),
                ends_at=NOW + timedelta(hours=hours + 1),
                accounts=None,
                scheduler_accounts=scope,
                now=NOW,
                **more,
            ),
            alice,
            store=store,
        )

    count = len(store.log)
    with pytest.raises(Forbidden):
        await schedule(0, (alice.tenant,))  # the member works every account: beyond it
    assert len(store.log) == count
    made = await schedule(0, None, suffix="1" * 32)
    assert made.shift.shift_id == f"{member_id}.{'1' * 32}"
    with pytest.raises(IllegalState):
        await schedule(0, None)  # an overlap
    # On every account: a manager of one sees it, and may not cancel it.
    with pytest.raises(Forbidden):
        await shifts.cancel_shift(
            alice.tenant, made.shift.shift_id, ("acct-x",), alice, store=store
        )
    await shifts.cancel_shift(alice.tenant, made.shift.shift_id, None, alice, store=store)
    with pytest.raises(Gone):
        await shifts.cancel_shift(alice.tenant, made.shift.shift_id, None, alice, store=store)
    await schedule(0, None)  # its hours are free again


def test_a_shift_id_is_its_members_id_a_dot_and_32_hex_digits() -> None:
    member, own = "0123456789abcdef" * 2, "fedcba9876543210" * 2
    made = make_shift_id(member, own)
    assert made == f"{member}.{own}"
    assert member_of_shift(made) == member
    assert is_member_id(member)
    for bad in (
        "",
        member,
        f"{member}.",
        f".{own}",
        f"{member}.{own}.{own}",
        f"{member}.{own}0",
        f"{member[1:]}.{own}",
        made.upper(),
        f"{member}.{own[:-1]}g",
        f"{member}-{own}",
        f"{made}\n",
        f" {made}",
        "11111111-1111-1111-1111-111111111111",  # the UUIDs shifts had before
    ):
        assert member_of_shift(bad) is None, bad
    for bad_member in ("m", member.upper(), f"{member}:", "a:b"):
        assert not is_member_id(bad_member)
        with pytest.raises(ValueError, match="not a shift id"):
            make_shift_id(bad_member, own)
    with pytest.raises(ValueError, match="not a shift id"):
        make_shift_id(member, "x" * 32)
    # The stream is the workspace's and the member's: another workspace names another one.
    assert member_shifts_stream_id("w", member) != member_shifts_stream_id("v", member)
    with pytest.raises(InvalidValue) as refused:
        MemberShifts.open("w", "no-such-member")
    assert refused.value.field == "member_id"


async def test_a_removal_committed_after_the_read_refuses_the_shift(
    alice: CommandContext,
) -> None:
    """The shift's append holds the workspace at the version read: the removal that lands in
    between makes it a conflict, and the retry reads the member as removed."""
    store = _RemovingFirst()
    member_id = await _joined(store, alice)
    store.remove = (alice, member_id)
    with pytest.raises(InvalidValue) as refused:
        await shifts.schedule_shift(
            shifts.ScheduleShift(
                workspace_id=alice.tenant,
                member_id=member_id,
                starts_at=NOW,
                ends_at=NOW + timedelta(hours=8),
                accounts=None,
                scheduler_accounts=None,
                now=NOW,
            ),
            alice,
            store=store,
        )
    assert refused.value.field == "member_id"
    assert not [r for r in store.log if isinstance(r.event, MemberShifts.Event)]
