"""Each route declares the permission it needs; one guard checks it for the whole app.

A route says ``**requires(Permission.WRITE)`` in its decorator: the guard reads it from the
handler's ``opt``, and the OpenAPI shows it as the scope of the route's bearer security. A
route without a declaration is refused when the app is built (``check_declared``), so a new
route cannot be open by omission.

What only the request's content tells (a send's price, an erasure) is checked by the handler
once it knows it, with ``require`` from here. Which account a request acts on is decided
here too (``act_on``), from the caller's key and its ``X-Account-Id`` header.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.routes import HTTPRoute

from adapters.bootstrap import Container
from adapters.postgres.api_keys import Principal, account_in_workspace
from application.errors import Forbidden, NotFound
from application.permissions import Permission

PUBLIC = "public"
_MAX_ACCOUNT_ID = 200
_OPT = "permission"


def requires(permission: Permission) -> dict[str, Any]:
    return {
        "guards": [permission_guard],
        "opt": {_OPT: permission},
        "security": [{"apiKey": [permission.value]}],
    }


def public() -> dict[str, Any]:
    """Authenticated otherwise (an HMAC signature, a scraper token) or not at all."""
    return {"opt": {_OPT: PUBLIC}, "security": []}


async def permission_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    needed = handler.opt[_OPT]
    principal = connection.user
    if not isinstance(principal, Principal) or not principal.may(needed):
        role = principal.role if isinstance(principal, Principal) else "none"
        raise Forbidden(f"a key with the role {role!r} may not {_verb(needed)}")


def require(principal: Principal, permission: Permission) -> None:
    """For what the route's declaration cannot know: called where the request shows it."""
    if not principal.may(permission):
        raise Forbidden(f"a key with the role {principal.role!r} may not {_verb(permission)}")


async def act_on(principal: Principal, account: str | None, container: Container) -> Principal:
    """The caller, acting on one account: the one ``X-Account-Id`` names, or else its key's
    own tenant (a first-release key) or the member's only account (its workspace's founding
    one for a member of every account). An account outside the caller's scope is not found
    (404), as another tenant's data always is."""
    if account is not None and (len(account) > _MAX_ACCOUNT_ID or "\x00" in account):
        raise NotFound("account")  # no account is named so (and Postgres text holds no NUL)
    if principal.member_id is None:
        if account is None or account == principal.user_id:
            return principal
    elif account is None:
        if principal.accounts is None:
            return msgspec.structs.replace(principal, user_id=principal.workspace_id)
        if len(principal.accounts) == 1:
            return msgspec.structs.replace(principal, user_id=principal.accounts[0])
        raise ValidationException(
            "this member acts on several accounts: name one in the X-Account-Id header"
        )
    if principal.accounts is not None:
        if account not in principal.accounts:
            raise NotFound(f"account {account}")
    elif account != principal.workspace_id and not await account_in_workspace(
        container.pool, container.events, principal.workspace_id, account
    ):
        raise NotFound(f"account {account}")
    return msgspec.structs.replace(principal, user_id=account)


def check_declared(app: Litestar) -> None:
    schema_path = app.openapi_config.path if app.openapi_config else "/schema"
    undeclared = [
        f"{'/'.join(sorted(route.methods))} {route.path}"
        for route in app.routes
        if isinstance(route, HTTPRoute) and not route.path.startswith(schema_path)
        for handler in route.route_handlers
        # litestar answers OPTIONS (CORS preflight) itself.
        if _OPT not in handler.opt and handler.http_methods != {"OPTIONS"}
    ]
    if undeclared:
        raise RuntimeError(f"routes without a declared permission: {', '.join(undeclared)}")


def _verb(permission: Any) -> str:
    return {
        Permission.READ: "read this account's CRM",
        Permission.WRITE: "change this account's fans",
        Permission.SEND: "send messages",
        Permission.SEND_PPV: "send paid (PPV) messages",
        Permission.LAUNCH_CAMPAIGNS: "run campaigns",
        Permission.IMPORT: "import fans",
        Permission.ERASE: "erase fans",
        Permission.MANAGE_MEMBERS: "manage the workspace's members",
        Permission.AUDIT: "read the audit log",
        Permission.AUDIT_GRANTED: "read other tenants' history",
        Permission.AUDIT_CHAIN: "read the chain's head",
        Permission.OPERATE: "operate the whole system",
    }.get(permission, "use this route")
