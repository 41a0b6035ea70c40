"""/api/workspace: the caller's workspace, its accounts, roles and members; and accepting an
invite, which needs no key (the invite's one-time token is the credential)."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import structlog
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIType
from litestar.params import FromPath, JSONBody

from adapters import tracing
from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import idempotency_key, message_id_for, replay_or_run
from adapters.http.openapi import IDEMPOTENCY_KEY, responses_for, rule, schema
from adapters.http.permissions import public, requires
from adapters.http.schemas import NO_NUL, Body, decode_strictly
from adapters.postgres.api_keys import Principal
from application import workspaces
from application.context import CommandContext
from application.permissions import MEMBER_GRANTABLE, Permission
from domain.workspace import MAX_ACCOUNTS, MAX_NAME

Deps = NamedDependency[Container]
_GRANTABLE = sorted(p.value for p in MEMBER_GRANTABLE)
# The two answers that carry a secret shown once are never stored, so never replayed: their
# Idempotency-Key makes a retry harmless instead.
_ONCE = dataclasses.replace(
    IDEMPOTENCY_KEY,
    description="Decides the invited member's id: a retry with the same key invites nobody"
    " twice (409; the first answer's token is shown once and never stored, so never replayed).",
)
_ACCEPTED_ONCE = dataclasses.replace(
    IDEMPOTENCY_KEY,
    description="Accepted and not needed: an invite is accepted once (a retry answers 410; the"
    " API key is shown once and never stored, so never replayed).",
)
Text = Annotated[
    str, rule("1-100 characters, no NUL", min_length=1, max_length=MAX_NAME, pattern=NO_NUL)
]
AccountId = Annotated[
    str, rule("An account of the workspace", min_length=1, max_length=200, pattern=NO_NUL)
]


class InviteBody(Body):
    role: Text
    accounts: (
        Annotated[list[AccountId], rule("At most 100", max_items=MAX_ACCOUNTS)] | Literal["all"]
    )
    name: Text | None = None


class InvitedOut(msgspec.Struct, kw_only=True, rename="camel"):
    member_id: str
    role: str
    permissions: list[str]
    accounts: list[str] | Literal["all"]
    # Shown once: only its hash is kept. Whoever holds it may accept the invite, once.
    invite_token: str
    expires_at: datetime
    position: int


class AcceptBody(Body):
    token: Annotated[str, rule("The invite's token", min_length=1, max_length=500)]


class AcceptedOut(msgspec.Struct, kw_only=True, rename="camel"):
    member_id: str
    workspace_id: str
    # Shown once: only its hash is kept.
    api_key: str


class MemberOut(msgspec.Struct, kw_only=True, rename="camel"):
    member_id: str
    name: str | None
    role: str
    permissions: list[str]
    accounts: list[str] | Literal["all"]
    status: Literal["invited", "active", "removed"]
    invited_by: str
    invited_at: datetime
    expires_at: datetime
    joined_at: datetime | None
    removed_at: datetime | None


class MemberListOut(msgspec.Struct, kw_only=True, rename="camel"):
    workspace_id: str
    members: list[MemberOut]


class MemberRemovedOut(msgspec.Struct, kw_only=True, rename="camel"):
    member_id: str
    removed: bool
    position: int


class RoleBody(Body):
    name: Text
    permissions: Annotated[
        list[str],
        rule(
            f"At most {workspaces.MAX_PERMISSIONS} of the permissions a member may hold",
            max_items=workspaces.MAX_PERMISSIONS,
            # litestar documents the items of list[str] without a rule: stated here.
            items=schema(type=OpenAPIType.STRING, enum=_GRANTABLE),
        ),
    ]


class RoleOut(msgspec.Struct, kw_only=True, rename="camel"):
    name: str
    permissions: list[str]


class AccountBody(Body):
    name: Text


class AccountOut(msgspec.Struct, kw_only=True, rename="camel"):
    account_id: str
    workspace_id: str
    name: str
    position: int


class WorkspaceController(Controller):
    path = "/api/workspace"
    tags = ["workspace"]

    @post(
        "/members",
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(body=True, conflict=True, headers=[_ONCE]),
    )
    async def invite(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[InviteBody]
    ) -> Response[InvitedOut]:
        """Invite a member: its role (built-in: owner, manager, chatter, auditor; or one this
        workspace defined) and the accounts it may act on. Answers a one-time token."""
        data = decode_strictly(await request.body(), InviteBody)
        principal = request.user
        accounts = None if data.accounts == "all" else tuple(data.accounts)
        # The token is shown once and kept hashed: no stored response can replay it. The key
        # decides the member's id instead, so a retry makes no second invite (409).
        key = idempotency_key(request)
        invited = await workspaces.invite_member(
            workspaces.InviteMember(
                workspace_id=principal.workspace_id,
                role=data.role,
                accounts=accounts,
                name=data.name,
                grantor=workspaces.Grantor(principal.held(), principal.accounts),
                now=datetime.now(UTC),
                member_id=(
                    uuid.UUID(message_id_for(principal.workspace_id, f"invite\x00{key}")).hex
                    if key
                    else None
                ),
            ),
            command_context(request),
            store=container.events,
        )
        body = InvitedOut(
            member_id=invited.member_id,
            role=data.role,
            permissions=list(invited.permissions),
            accounts="all" if accounts is None else list(accounts),
            invite_token=invited.token,
            expires_at=invited.expires_at,
            position=invited.position,
        )
        return Response(body, status_code=201)

    @get("/members", **requires(Permission.MANAGE_MEMBERS), **responses_for(lagging=True))
    async def list_members(
        self, request: Request[Principal, Any, Any], container: Deps
    ) -> MemberListOut:
        """The workspace's members, invited, active and removed; never a key or a token."""
        await read_your_writes(request, container, ["workspaces"])
        workspace_id = request.user.workspace_id
        views = await container.workspaces.members(workspace_id)
        return MemberListOut(
            workspace_id=workspace_id,
            members=[
                MemberOut(
                    member_id=v.member_id,
                    name=v.name,
                    role=v.role,
                    permissions=v.permissions,
                    accounts="all" if v.accounts is None else v.accounts,
                    status=v.status,  # type: ignore[arg-type]
                    invited_by=v.invited_by,
                    invited_at=v.invited_at,
                    expires_at=v.expires_at,
                    joined_at=v.joined_at,
                    removed_at=v.removed_at,
                )
                for v in views
            ],
        )

    @delete(
        "/members/{member_id:str}",
        status_code=200,
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(found=True, conflict=True),
    )
    async def remove(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        member_id: FromPath[str],
    ) -> MemberRemovedOut:
        """Remove a member (or cancel its invite): its keys stop working at once."""
        position = await workspaces.remove_member(
            request.user.workspace_id,
            member_id,
            command_context(request),
            store=container.events,
            keys=container.member_keys,
        )
        return MemberRemovedOut(member_id=member_id, removed=True, position=position)

    @post(
        "/roles",
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(body=True, idempotent=True),
    )
    async def define_role(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[RoleBody]
    ) -> Response[RoleOut]:
        """A custom role: a name and the permissions it grants (never changed afterwards)."""
        data = decode_strictly(await request.body(), RoleBody)
        ctx = command_context(request)

        async def run() -> Response[Any]:
            names = await workspaces.define_role(
                request.user.workspace_id,
                data.name,
                list(data.permissions),
                ctx,
                store=container.events,
            )
            body = RoleOut(name=data.name.strip(), permissions=list(names))
            return Response(body, status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @post(
        "/accounts",
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(body=True, idempotent=True),
    )
    async def add_account(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[AccountBody]
    ) -> Response[AccountOut]:
        """A new creator account in the workspace, by its display name; its id is made here,
        never chosen (an id chosen by a caller could be another tenant's)."""
        data = decode_strictly(await request.body(), AccountBody)
        workspace_id = request.user.workspace_id
        ctx = command_context(request)

        async def run() -> Response[Any]:
            account_id = f"acct-{secrets.token_hex(8)}"
            position = await workspaces.add_account(
                workspace_id, account_id, data.name, ctx, store=container.events
            )
            body = AccountOut(
                account_id=account_id,
                workspace_id=workspace_id,
                name=data.name.strip(),
                position=position,
            )
            return Response(body, status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)


@post(
    "/api/workspace/invites/accept",
    tags=["workspace"],
    **public(),
    **responses_for(
        public=True,
        body=True,
        found=True,
        conflict=True,
        also=(410,),
        why={410: "The invite was accepted already or has expired"},
        headers=[_ACCEPTED_ONCE],
    ),
)
async def accept_invite(
    request: Request[Any, Any, Any], container: Deps, data: JSONBody[AcceptBody]
) -> Response[AcceptedOut]:
    """Accept an invite: makes the member's own API key, shown once."""
    data = decode_strictly(await request.body(), AcceptBody)
    ids = structlog.contextvars.get_contextvars()
    ctx = CommandContext(
        tenant="",  # the workspace's, from the token
        actor="",  # the member's, from the token
        correlation_id=ids.get("correlation_id", ""),
        causation_id=ids.get("request_id"),
        trace_id=tracing.current_trace_id(),
    )
    workspace_id, member_id, key = await workspaces.accept_invite(
        data.token, datetime.now(UTC), ctx, store=container.events, keys=container.member_keys
    )
    return Response(
        AcceptedOut(member_id=member_id, workspace_id=workspace_id, api_key=key), status_code=201
    )
