"""Who opens the live stream (adapters/http/live.py): a single-use ticket (``?ticket=``) or,
for SSE only, the usual bearer key; then Permission.READ, as every route checks it.

Both streams are left out of the API key middleware (app.py, PUBLIC_PATHS): a browser cannot
set Authorization on a WebSocket, and the SSE route takes either.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketException
from litestar.handlers import BaseRouteHandler

from adapters.http.auth import KeyCache, _authorization, _header
from adapters.http.permissions import act_on, permission_guard, requires
from adapters.postgres.live_tickets import redeem_ticket
from application.errors import Forbidden, Unauthorized
from application.permissions import Permission


async def live_principal(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Who the stream is for: a ticket's principal (redeemed: it works once), or for SSE the
    bearer key's, acting on the account X-Account-Id names."""
    ticket = connection.query_params.get("ticket")
    if ticket is not None:
        principal = await redeem_ticket(connection.app.state.container.pool, ticket)
        if principal is None:
            raise Unauthorized("unknown, used or expired ticket: ask POST /api/live/tickets")
    elif connection.scope["type"] == ScopeType.WEBSOCKET:
        raise Unauthorized("a WebSocket authenticates with ?ticket= (POST /api/live/tickets)")
    else:
        headers = list(connection.scope["headers"])
        scheme, _, key = _authorization(headers).partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send ?ticket= or an API key as 'Authorization: Bearer <key>'")
        cache: KeyCache = connection.app.state.key_cache
        found = await cache.principal(key.strip())
        if found is None:
            raise Unauthorized("unknown or revoked API key")
        account = _header(headers, b"x-account-id")
        principal = await act_on(found, account or None, connection.app.state.container)
    connection.scope["user"] = principal


async def socket_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The same checks for the WebSocket, refused with a close code (4000 + the status the
    same refusal answers over HTTP). Before the handshake is accepted a server answers it
    with a 403 (uvicorn does), so that is what a client sees."""
    try:
        await live_principal(connection, handler)
        await permission_guard(connection, handler)
    except Unauthorized as error:
        raise WebSocketException(detail=str(error), code=4401) from None
    except Forbidden as error:
        raise WebSocketException(detail=str(error), code=4403) from None


def live_requires(*guards: Any) -> dict[str, Any]:
    """A stream route's declaration: Permission.READ, checked by ``guards``."""
    declared = requires(Permission.READ)
    # "stream": a response that never ends, which tests walking every route skip.
    return {**declared, "guards": list(guards), "opt": {**declared["opt"], "stream": True}}
