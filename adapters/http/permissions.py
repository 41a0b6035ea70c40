"""Each route declares the permission it needs; one guard checks it for the whole app.

A route says ``**requires(Permission.WRITE)`` in its decorator: the guard reads it from the
handler's ``opt``, and the OpenAPI shows it as the scope of the route's bearer security. A
route without a declaration is refused when the app is built (``check_declared``), so a new
route cannot be open by omission.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.routes import HTTPRoute

from adapters.postgres.api_keys import Principal
from application.errors import Forbidden
from application.permissions import Permission

PUBLIC = "public"
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


def permission_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    needed = handler.opt[_OPT]
    principal = connection.user
    if not isinstance(principal, Principal) or not principal.may(needed):
        role = principal.role if isinstance(principal, Principal) else "none"
        raise Forbidden(f"a key with the role {role!r} may not {_verb(needed)}")


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
        Permission.WRITE: "change this account's data",
        Permission.AUDIT: "read the audit log",
        Permission.AUDIT_GRANTED: "read other tenants' history",
        Permission.AUDIT_CHAIN: "read the chain's head",
        Permission.OPERATE: "operate the whole system",
    }.get(permission, "use this route")
