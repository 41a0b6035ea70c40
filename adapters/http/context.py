"""Per-request values every controller needs: the caller, the command context, and waiting
for the read model to reach a position (read-your-writes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from litestar import Request
from litestar.exceptions import ValidationException

from adapters import tracing
from adapters.bootstrap import Container
from adapters.postgres.api_keys import Principal
from application.context import CommandContext
from application.errors import ProjectionLagging

_POLL_SECONDS = 0.01


def command_context(request: Request[Principal, Any, Any]) -> CommandContext:
    principal = request.user
    ids = structlog.contextvars.get_contextvars()
    return CommandContext(
        tenant=principal.user_id,
        actor=f"apikey:{principal.key_id}",
        correlation_id=ids.get("correlation_id", ""),
        causation_id=ids.get("request_id"),
        trace_id=tracing.current_trace_id(),  # the request's trace, into the events' metadata
    )


async def wait_for_position(container: Container, projection: str, position: int | None) -> None:
    """Hold a query until ``projection`` has applied ``position``, within a bounded time."""
    if position is None:
        return
    store = container.projection_store
    deadline = time.monotonic() + container.settings.read_your_writes_timeout
    while not (applied := await store.applied(projection, position)):
        if applied is None:
            raise ValidationException(
                f"minPosition {position}: no event was recorded there (beyond the log's head?)",
                extra=[{"key": "minPosition", "message": "no event was recorded at this position"}],
            )
        if time.monotonic() >= deadline:
            raise ProjectionLagging(
                f"the {projection} view has not reached position {position} yet"
            )
        await asyncio.sleep(_POLL_SECONDS)
