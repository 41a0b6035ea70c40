"""Per-request values every controller needs: the caller, the command context; and
read-your-writes: what a key writes is recorded before the write answers, and its reads wait
for the views to reach it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapters import tracing
from adapters.bootstrap import Container
from adapters.postgres.api_keys import Principal
from adapters.postgres.written_positions import collecting
from application.context import CommandContext
from application.errors import ProjectionLagging

_POLL_SECONDS = 0.01
log = structlog.get_logger(__name__)


def command_context(request: Request[Principal, Any, Any]) -> CommandContext:
    principal = request.user
    ids = structlog.contextvars.get_contextvars()
    return CommandContext(
        tenant=principal.user_id,
        # A member is the actor (its stable id, whichever of its keys it used); a key of the
        # first release, shared by whoever holds it, is named as before.
        actor=(
            f"member:{principal.member_id}"
            if principal.member_id is not None
            else f"apikey:{principal.key_id}"
        ),
        correlation_id=ids.get("correlation_id", ""),
        causation_id=ids.get("request_id"),
        trace_id=tracing.current_trace_id(),  # the request's trace, into the events' metadata
        workspace_id=principal.workspace_id or principal.user_id,
    )


async def read_your_writes(
    request: Request[Principal, Any, Any],
    container: Container,
    views: Sequence[str],
    min_position: int | None = None,
) -> None:
    """Hold a query, a bounded time, until each of ``views`` has applied everything the
    caller's key has written (recorded before each write answered, by ``record_writes``) and,
    with ``min_position``, that event too (someone else's write)."""
    writes = container.key_writes
    target = await writes.target(request.user.key_id, views, min_position)
    if target.unknown:
        raise ValidationException(
            f"minPosition {min_position}: no event was recorded there (beyond the log's head?)",
            extra=[{"key": "minPosition", "message": "no event was recorded at this position"}],
        )
    if target.checkpoint is None or not target.behind:
        return
    deadline = time.monotonic() + container.settings.read_your_writes_timeout
    behind = target.behind
    while True:
        if time.monotonic() >= deadline:
            have = "view has" if len(behind) == 1 else "views have"
            raise ProjectionLagging(
                f"the {', '.join(behind)} {have} not reached position"
                f" {target.checkpoint.position} yet"
            )
        await asyncio.sleep(_POLL_SECONDS)
        behind = await writes.behind(behind, target.checkpoint)
        if not behind:
            return


def record_writes(app: ASGIApp) -> ASGIApp:
    """Record, before a request's answer starts, the newest event it committed against the
    caller's key, so that the key's next read, on any API process, waits for it.

    Recorded whatever the status: an event committed is the caller's write even if something
    after it failed. A failure to record fails nothing (the request has succeeded): that key's
    reads then wait only for what they ask with minPosition, as before."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await app(scope, receive, send)
            return
        with collecting() as written:

            async def send_after_recording(message: Message) -> None:
                if message["type"] == "http.response.start" and written:
                    await _record(scope, list(written))
                    written.clear()
                await send(message)

            await app(scope, receive, send_after_recording)

    return middleware


async def _record(scope: Scope, positions: list[int]) -> None:
    principal = scope.get("user")
    if not isinstance(principal, Principal):
        return  # no API key (a webhook): no reader to serve
    try:
        await scope["app"].state.container.key_writes.record(principal.key_id, positions)
    except Exception:
        log.warning("could not record a key's write", key_id=principal.key_id, exc_info=True)


_READS = frozenset({"GET", "HEAD", "OPTIONS"})
