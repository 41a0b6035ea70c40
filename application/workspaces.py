"""Workspace commands: accounts, roles, inviting, accepting and removing members; and what a
member may do, as the log has it (the key lookup's answer when its read model has not caught
up).

Member keys are credentials, not a view: made when an invite is accepted and revoked when
the member is removed, in the try that appends the event, before it appends. A removal that
commits has therefore revoked every key of the member; one that does not commit has revoked
keys of a member still listed, which fails closed. An accept whose append loses deletes the
key it made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from application.context import CommandContext
from application.errors import Forbidden, NotFound
from application.permissions import MEMBER_ROLES, Permission, parse_permissions
from application.ports import EventStore
from application.streams import Loaded, handle, load, save
from domain.errors import InvalidValue
from domain.workspace import Workspace, workspace_stream_id

STREAM_TYPE = "workspace"
INVITE_TTL = timedelta(days=7)
MAX_PERMISSIONS = 20  # names given for a role, repeats included (the body's documented limit)
_TOKEN_PREFIX = "inv_"  # noqa: S105 (a prefix, not a secret)


class MemberKeys(Protocol):
    async def create(self, *, workspace_id: str, member_id: str) -> tuple[str, str]:
        """A new API key of the member: (the key, shown once; its id)."""
        ...

    async def delete(self, key_id: str) -> None: ...

    async def revoke_member(self, member_id: str) -> None:
        """Every key of the member stops working, in every process, at once."""
        ...


class Grantor(msgspec.Struct, frozen=True):
    """What the one inviting may do: nobody gives more than it holds."""

    permissions: frozenset[Permission]
    accounts: tuple[str, ...] | None  # None: every account of the workspace


class InviteMember(msgspec.Struct, frozen=True, kw_only=True):
    workspace_id: str
    role: str
    accounts: tuple[str, ...] | None
    name: str | None = None
    grantor: Grantor
    now: datetime
    # Made here unless the caller's Idempotency-Key decides it (a retry then meets it: 409).
    member_id: str | None = None


class Invited(msgspec.Struct, frozen=True):
    member_id: str
    token: str
    expires_at: datetime
    permissions: tuple[str, ...]
    position: int


class MemberAccess(msgspec.Struct, frozen=True):
    workspace_id: str
    member_id: str
    role: str
    permissions: frozenset[Permission]
    accounts: tuple[str, ...] | None
    workspace_accounts: tuple[str, ...]


def in_workspace(ctx: CommandContext, workspace_id: str) -> CommandContext:
    # The workspace's events belong to its founding account, whichever account a member acts on.
    return msgspec.structs.replace(ctx, tenant=workspace_id)


async def _load_or_found(store: EventStore, workspace_id: str) -> Loaded:
    try:
        return await load(store, workspace_stream_id(workspace_id), tenant=workspace_id)
    except NotFound:
        # Never written to: the implicit workspace of a tenant (see domain/workspace.py).
        return Workspace.found(workspace_id), 0


async def on_workspace(
    store: EventStore, workspace_id: str, decide: Any, ctx: CommandContext
) -> Any:
    """Read the workspace (founding it if never written), ``decide``, append: in its tenant."""
    return await handle(
        store,
        workspace_stream_id(workspace_id),
        decide,
        in_workspace(ctx, workspace_id),
        stream_type=STREAM_TYPE,
        load_stream=lambda: _load_or_found(store, workspace_id),
    )


async def add_account(
    workspace_id: str, account_id: str, name: str, ctx: CommandContext, *, store: EventStore
) -> int:
    async def decide(workspace: Workspace) -> None:
        workspace.add_account(account_id, name)

    return int((await on_workspace(store, workspace_id, decide, ctx)).position)


async def define_role(
    workspace_id: str,
    name: str,
    permissions: list[str],
    ctx: CommandContext,
    *,
    store: EventStore,
) -> tuple[str, ...]:
    parsed = parse_permissions(permissions) if len(permissions) <= MAX_PERMISSIONS else None
    if parsed is None:
        raise InvalidValue(
            "permissions", f"must be at most {MAX_PERMISSIONS} permissions a member may hold"
        )
    names = tuple(sorted(p.value for p in parsed))

    async def decide(workspace: Workspace) -> None:
        workspace.define_role(name, names, builtin=frozenset(MEMBER_ROLES))

    await on_workspace(store, workspace_id, decide, ctx)
    return names


async def invite_member(cmd: InviteMember, ctx: CommandContext, *, store: EventStore) -> Invited:
    member_id = cmd.member_id or secrets.token_hex(16)
    token = _encode_token(cmd.workspace_id, member_id)
    expires_at = cmd.now + INVITE_TTL

    async def decide(workspace: Workspace) -> tuple[str, ...]:
        permissions = _role_permissions(workspace, cmd.role)
        _check_grant(cmd.grantor, permissions, cmd.accounts)
        workspace.invite(
            member_id=member_id,
            name=cmd.name,
            role=cmd.role,
            permissions=permissions,
            accounts=cmd.accounts,
            token_hash=token_hash(token),
            expires_at=expires_at,
        )
        return workspace.members[member_id].permissions

    handled = await on_workspace(store, cmd.workspace_id, decide, ctx)
    return Invited(member_id, token, expires_at, handled.decision, handled.position)


async def accept_invite(
    token: str, now: datetime, ctx: CommandContext, *, store: EventStore, keys: MemberKeys
) -> tuple[str, str, str]:
    """(workspace id, member id, the member's new API key)."""
    workspace_id, member_id = _decode_token(token)
    ctx = msgspec.structs.replace(in_workspace(ctx, workspace_id), actor=f"member:{member_id}")
    made: list[str] = []

    async def decide(workspace: Workspace) -> None:
        workspace.accept(member_id, token_hash=token_hash(token), now=now)

    async def append(workspace: Workspace, _: None) -> int | None:
        key, key_id = await keys.create(workspace_id=workspace_id, member_id=member_id)
        made[:] = [key, key_id]
        try:
            return await save(store, workspace, STREAM_TYPE, ctx)
        except BaseException:
            await keys.delete(key_id)
            raise

    await handle(
        store,
        workspace_stream_id(workspace_id),
        decide,
        ctx,
        stream_type=STREAM_TYPE,
        load_stream=lambda: load(store, workspace_stream_id(workspace_id), tenant=workspace_id),
        append=append,
    )
    return workspace_id, member_id, made[0]


async def remove_member(
    workspace_id: str, member_id: str, ctx: CommandContext, *, store: EventStore, keys: MemberKeys
) -> int:
    ctx = in_workspace(ctx, workspace_id)

    async def decide(workspace: Workspace) -> None:
        workspace.remove(member_id)

    async def append(workspace: Workspace, _: None) -> int | None:
        await keys.revoke_member(member_id)  # before the event: see the module's docstring
        return await save(store, workspace, STREAM_TYPE, ctx)

    handled = await handle(
        store,
        workspace_stream_id(workspace_id),
        decide,
        ctx,
        stream_type=STREAM_TYPE,
        load_stream=lambda: load(store, workspace_stream_id(workspace_id), tenant=workspace_id),
        append=append,
    )
    return handled.position


async def member_access(
    store: EventStore, workspace_id: str, member_id: str
) -> MemberAccess | None:
    """What an active member may do, read from the log; None if it is not one."""
    try:
        workspace, _ = await load(store, workspace_stream_id(workspace_id), tenant=workspace_id)
    except NotFound:
        return None
    member = workspace.active_member(member_id)
    if member is None:
        return None
    return MemberAccess(
        workspace_id,
        member_id,
        member.role,
        parse_permissions(member.permissions) or frozenset(),
        member.accounts,
        tuple(workspace.accounts),
    )


async def has_account(store: EventStore, workspace_id: str, account_id: str) -> bool:
    workspace, _ = await _load_or_found(store, workspace_id)
    return account_id in workspace.accounts


def _role_permissions(workspace: Workspace, role: str) -> tuple[str, ...]:
    if role in MEMBER_ROLES:
        return tuple(sorted(p.value for p in MEMBER_ROLES[role]))
    if role in workspace.roles:
        return workspace.roles[role]
    raise InvalidValue("role", "is neither a built-in role nor one this workspace defined")


def _check_grant(
    grantor: Grantor, permissions: tuple[str, ...], accounts: tuple[str, ...] | None
) -> None:
    held = {p.value for p in grantor.permissions}
    if not set(permissions) <= held:
        raise Forbidden("a member cannot give a permission it does not hold")
    if grantor.accounts is not None and (
        accounts is None or not set(accounts) <= set(grantor.accounts)
    ):
        raise Forbidden("a member cannot give access to an account outside its own scope")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _encode_token(workspace_id: str, member_id: str) -> str:
    workspace = base64.urlsafe_b64encode(workspace_id.encode()).decode().rstrip("=")
    return f"{_TOKEN_PREFIX}{workspace}.{member_id}.{secrets.token_urlsafe(32)}"


def _decode_token(token: str) -> tuple[str, str]:
    """(workspace id, member id) of a well-formed token; NotFound for anything else."""
    parts = token.removeprefix(_TOKEN_PREFIX).split(".")
    if not token.startswith(_TOKEN_PREFIX) or len(parts) != 3 or not all(parts):
        raise NotFound("invite")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        workspace_id = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise NotFound("invite") from None
    if not workspace_id or "\x00" in workspace_id:
        raise NotFound("invite")  # no tenant is named so (and Postgres text holds no NUL)
    return workspace_id, parts[1]
