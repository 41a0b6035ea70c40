"""Workspace commands against the in-memory event store: invites are single-use, removal
revokes keys, nobody grants more than it holds, and the log answers what a member may do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from application import workspaces
from application.context import CommandContext
from application.errors import Forbidden, NotFound
from application.permissions import MEMBER_ROLES, Permission, permissions_of
from domain.errors import Gone, IllegalState, InvalidValue
from domain.workspace import InviteUsed, Workspace
from tests.support.fakes import InMemoryEventStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = workspaces.Grantor(permissions_of("creator"), None)


class FakeMemberKeys:
    """Keys by id: (member id, revoked)."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, bool]] = {}

    async def create(self, *, workspace_id: str, member_id: str) -> tuple[str, str]:
        key_id = f"k{len(self.keys)}"
        self.keys[key_id] = (member_id, False)
        return f"key-{key_id}", key_id

    async def delete(self, key_id: str) -> None:
        del self.keys[key_id]

    async def revoke_member(self, member_id: str) -> None:
        for key_id, (member, _) in list(self.keys.items()):
            if member == member_id:
                self.keys[key_id] = (member, True)


async def _invite(
    store: InMemoryEventStore,
    ctx: CommandContext,
    *,
    role: str = "chatter",
    accounts: tuple[str, ...] | None = None,
    grantor: workspaces.Grantor = OWNER,
) -> workspaces.Invited:
    return await workspaces.invite_member(
        workspaces.InviteMember(
            workspace_id=ctx.tenant, role=role, accounts=accounts, grantor=grantor, now=NOW
        ),
        ctx,
        store=store,
    )


async def test_the_first_command_founds_the_workspace_of_the_callers_tenant(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    invited = await _invite(store, alice)
    first, second = store.log
    assert isinstance(first.event, Workspace.Founded)
    assert isinstance(second.event, Workspace.MemberInvited)
    assert first.stream_id == f"workspace-{alice.tenant}"
    assert second.metadata.tenant == alice.tenant
    assert second.event.permissions == tuple(sorted(p.value for p in MEMBER_ROLES["chatter"]))
    assert invited.token not in repr(second.event)  # only its hash is kept


async def test_an_invite_is_accepted_once(store: InMemoryEventStore, alice: CommandContext) -> None:
    keys = FakeMemberKeys()
    invited = await _invite(store, alice)
    workspace_id, member_id, key = await workspaces.accept_invite(
        invited.token, NOW, alice, store=store, keys=keys
    )
    assert (workspace_id, member_id) == (alice.tenant, invited.member_id)
    assert key == "key-k0"
    assert store.log[-1].metadata.actor == f"member:{member_id}"
    with pytest.raises(InviteUsed):
        await workspaces.accept_invite(invited.token, NOW, alice, store=store, keys=keys)
    assert list(keys.keys) == ["k0"]  # the refused accept left no key behind


async def test_an_expired_invite_or_a_wrong_token_makes_no_key(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    keys = FakeMemberKeys()
    invited = await _invite(store, alice)
    with pytest.raises(InviteUsed):
        await workspaces.accept_invite(
            invited.token, NOW + timedelta(days=8), alice, store=store, keys=keys
        )
    with pytest.raises(Gone):
        await workspaces.accept_invite(invited.token + "x", NOW, alice, store=store, keys=keys)
    for malformed in ("", "inv_", "inv_!!.a.b", "nope", "inv_AA.a.b"):
        with pytest.raises(NotFound):
            await workspaces.accept_invite(malformed, NOW, alice, store=store, keys=keys)
    assert keys.keys == {}


async def test_removing_a_member_revokes_its_keys_and_cancels_an_unused_invite(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    keys = FakeMemberKeys()
    joined = await _invite(store, alice)
    await workspaces.accept_invite(joined.token, NOW, alice, store=store, keys=keys)
    assert await workspaces.member_access(store, alice.tenant, joined.member_id) is not None
    await workspaces.remove_member(alice.tenant, joined.member_id, alice, store=store, keys=keys)
    assert keys.keys == {"k0": (joined.member_id, True)}
    assert await workspaces.member_access(store, alice.tenant, joined.member_id) is None

    pending = await _invite(store, alice)
    await workspaces.remove_member(alice.tenant, pending.member_id, alice, store=store, keys=keys)
    with pytest.raises(InviteUsed):
        await workspaces.accept_invite(pending.token, NOW, alice, store=store, keys=keys)
    with pytest.raises(Gone):
        await workspaces.remove_member(
            alice.tenant, pending.member_id, alice, store=store, keys=keys
        )


async def test_a_member_gives_no_permission_nor_account_it_lacks(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    await workspaces.add_account(alice.tenant, "acct-b", "Bea", alice, store=store)
    manager = workspaces.Grantor(MEMBER_ROLES["manager"], (alice.tenant,))
    with pytest.raises(Forbidden):
        await _invite(store, alice, role="owner", accounts=(alice.tenant,), grantor=manager)
    with pytest.raises(Forbidden):
        await _invite(store, alice, role="chatter", accounts=("acct-b",), grantor=manager)
    with pytest.raises(Forbidden):
        await _invite(store, alice, role="chatter", accounts=None, grantor=manager)
    await _invite(store, alice, role="chatter", accounts=(alice.tenant,), grantor=manager)
    with pytest.raises(InvalidValue):
        await _invite(store, alice, accounts=("acct-of-someone-else",))
    with pytest.raises(InvalidValue):
        await _invite(store, alice, role="no-such-role")


async def test_a_custom_role_is_a_set_of_member_permissions_defined_once(
    store: InMemoryEventStore, alice: CommandContext
) -> None:
    names = await workspaces.define_role(
        alice.tenant, "closer", ["messages:send", "crm:read"], alice, store=store
    )
    assert names == ("crm:read", "messages:send")
    with pytest.raises(IllegalState):
        await workspaces.define_role(alice.tenant, "closer", ["crm:read"], alice, store=store)
    with pytest.raises(InvalidValue):
        await workspaces.define_role(alice.tenant, "owner", ["crm:read"], alice, store=store)
    with pytest.raises(InvalidValue):
        await workspaces.define_role(alice.tenant, "ops", ["ops:read"], alice, store=store)
    keys = FakeMemberKeys()
    invited = await _invite(store, alice, role="closer")
    await workspaces.accept_invite(invited.token, NOW, alice, store=store, keys=keys)
    access = await workspaces.member_access(store, alice.tenant, invited.member_id)
    assert access is not None
    assert access.permissions == {Permission.READ, Permission.SEND}
    assert access.workspace_accounts == (alice.tenant,)


async def test_another_tenants_workspace_is_not_found(
    store: InMemoryEventStore, alice: CommandContext, bob: CommandContext
) -> None:
    keys = FakeMemberKeys()
    invited = await _invite(store, alice)
    with pytest.raises(NotFound):
        await workspaces.remove_member(bob.tenant, invited.member_id, bob, store=store, keys=keys)
    assert await workspaces.member_access(store, bob.tenant, invited.member_id) is None
