"""/api/live: the live stream as a WebSocket, /api/live/events as Server-Sent Events, and
/api/live/tickets, which trades an API key for a single-use ticket a browser can put in the
URL (it cannot set Authorization on a WebSocket). Shapes: adapters/live/updates.py, README.

Both streams authenticate themselves (adapters/http/live_auth.py): a ticket, or for SSE the
usual bearer key; then Permission.READ, as on every route.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec
from litestar import Request, WebSocket, get, post, websocket
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException, WebSocketDisconnect
from litestar.response import ServerSentEvent, ServerSentEventMessage

from adapters.bootstrap import Container
from adapters.http.live_auth import live_principal, live_requires, socket_guard
from adapters.http.openapi import IDEMPOTENCY_KEY, responses_for
from adapters.http.permissions import permission_guard, requires
from adapters.live import session
from adapters.live.hub import LiveHub
from adapters.live.subscription import BadFilter, Filters
from adapters.postgres.api_keys import Principal
from adapters.postgres.live_tickets import TICKET_SECONDS, issue_ticket
from application.permissions import Permission

Deps = NamedDependency[Container]
_MAX_POSITION = 2**63 - 1


class TicketOut(msgspec.Struct, rename="camel"):
    ticket: str
    expires_in_seconds: int


def _parse(query: Any, last_event_id: str | None = None) -> tuple[Filters, int | None]:
    """The filters and the resume position; ValidationException (400) for anything else."""
    try:
        filters = Filters.parse(
            query.get("conversationId"), query.get("campaignId"), query.get("types")
        )
    except BadFilter as error:
        raise ValidationException(str(error)) from None
    raw = query.get("after", last_event_id)
    if raw is None or raw == "":
        return filters, None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > _MAX_POSITION:
        raise ValidationException("after (or Last-Event-ID) must be an update's position")
    return filters, int(raw)


# A ticket is shown once and works once: an answer holding one is never stored, so never
# replayed; a retry simply gets another ticket.
_NEW_EACH_TIME = dataclasses.replace(
    IDEMPOTENCY_KEY,
    description="Accepted and not needed: each call issues a new single-use ticket (an answer"
    " holding one is never stored, so never replayed).",
)


@post(
    "/api/live/tickets",
    status_code=201,
    tags=["live"],
    **requires(Permission.READ),
    **responses_for(params=False, headers=[_NEW_EACH_TIME]),
)
async def create_ticket(request: Request[Principal, Any, Any], container: Deps) -> TicketOut:
    """A ticket for one connection to /api/live or /api/live/events (``?ticket=``), valid
    once, for 30 seconds, acting as this key on the account it acts on now."""
    ticket = await issue_ticket(container.pool, request.user, TICKET_SECONDS)
    return TicketOut(ticket=ticket, expires_in_seconds=TICKET_SECONDS)


# Out of the OpenAPI document: its clients (and the tools that call every operation in it)
# expect answers that end. README.md, "Live updates", documents the stream.
@get(
    "/api/live/events",
    include_in_schema=False,
    **live_requires(live_principal, permission_guard),
)
async def live_events(request: Request[Principal, Any, Any], container: Deps) -> ServerSentEvent:
    """The live stream as Server-Sent Events: each update is one event, its JSON the data and
    its position the event id (so EventSource resumes with Last-Event-ID by itself);
    ``?after=`` resumes too. Heartbeats are comment lines. Filters: ``conversationId``,
    ``campaignId``, ``types`` (comma-separated)."""
    filters, after = _parse(request.query_params, request.headers.get("last-event-id"))
    hub: LiveHub = request.app.state.live_hub
    user = request.user
    updates = session.stream(hub, container.pool, user.user_id, filters, after, user.member_id)
    return ServerSentEvent(_as_events(updates))


async def _as_events(updates: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Any]:
    async for update in updates:
        if update is session.HEARTBEAT:
            yield ServerSentEventMessage(comment="heartbeat", data=None)
        else:
            yield ServerSentEventMessage(
                data=msgspec.json.encode(update).decode(), id=update.get("position")
            )


# Close codes: 4000 + the HTTP status the same mistake answers elsewhere.
BAD_REQUEST = 4400
TOO_SLOW = 4008
REVOKED = 4403


@websocket("/api/live", **live_requires(socket_guard))
async def live_socket(socket: WebSocket[Principal, Any, Any], container: Deps) -> None:
    """The live stream over a WebSocket (``?ticket=``); the same updates, filters and
    ``?after=`` as /api/live/events. Bad input closes the socket with code 4400 and the
    reason; a client too slow for its queue gets a ``closing`` update with ``resumeAfter``,
    then code 4008; a member removed from its workspace, ``revoked`` then 4403."""
    try:
        filters, after = _parse(socket.query_params)
    except ValidationException as error:
        await socket.close(code=BAD_REQUEST, reason=str(error.detail)[:120])
        return
    await socket.accept()
    hub: LiveHub = socket.app.state.live_hub
    user = socket.user
    updates = session.stream(hub, container.pool, user.user_id, filters, after, user.member_id)
    sending = asyncio.create_task(_send_all(socket, updates))
    # The client says nothing; reading tells when it has gone, so its subscription ends then
    # rather than at the next heartbeat.
    receiving = asyncio.create_task(_until_closed(socket))
    try:
        await asyncio.wait([sending, receiving], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, receiving):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await socket.close()


async def _send_all(
    socket: WebSocket[Any, Any, Any], updates: AsyncGenerator[dict[str, Any], None]
) -> None:
    # Closed on leaving, whichever way: that ends the client's subscription at once.
    async with contextlib.aclosing(updates):
        async for update in updates:
            await socket.send_data(msgspec.json.encode(update).decode())
            if update["type"] == "closing":
                reason = f"too slow; resume after {update['resumeAfter']}"
                await socket.close(code=TOO_SLOW, reason=reason)
                return
            if update["type"] == "revoked":
                await socket.close(code=REVOKED, reason="member removed")
                return
            if update["type"] == "resync":
                await socket.close(code=1000, reason="resync")
                return


async def _until_closed(socket: WebSocket[Any, Any, Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data("text")
