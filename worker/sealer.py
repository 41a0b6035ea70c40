"""The sealer: follows the log like a projector and extends the hash chain over it.

It wakes on the same NOTIFY as the projectors (through the projection store's listener) and
polls as a fallback. A failing batch is logged and retried with backoff; nothing is sealed
twice because the chain's last row is the checkpoint and commits with the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

from adapters.bootstrap import Container
from adapters.postgres.event_chain_store import PostgresEventChain

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


async def run_sealer(
    container: Container, stop: asyncio.Event, *, poll_interval: float = POLL_SECONDS
) -> None:
    sealer = PostgresEventChain(container.pool)
    wakeups = container.projection_store
    await wakeups.listen()
    log.info("sealer started")
    backoff = poll_interval
    while not stop.is_set():
        try:
            if await sealer.seal_batch():
                backoff = poll_interval
                continue
            await _first_of(wakeups.wait_for_events(poll_interval), stop.wait())
        except asyncio.CancelledError:
            raise
        except Exception:  # an outage or a bug: keep it visible, retry
            log.exception("sealing failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
