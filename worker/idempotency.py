"""Deletes expired Idempotency-Keys, a batch at a time, in the relay worker (every deployment
runs one): expired keys answer nothing any more (they may be reserved anew), so they only
take room. Each batch is one short statement that skips rows a running command holds, so it
never locks the table nor waits on a request."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from adapters.postgres.idempotency_keys import IdempotencyKeys

log = structlog.get_logger(__name__)

CLEANUP_EVERY_SECONDS = 60.0
BATCH = 1000


async def delete_expired_keys(keys: IdempotencyKeys, batch: int = BATCH) -> int:
    """Delete every key expired by now, ``batch`` rows per statement; how many."""
    total = 0
    while True:
        deleted = await keys.delete_expired(batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # other work on this loop goes between batches


async def run_key_cleanup(
    keys: IdempotencyKeys, stop: asyncio.Event, every: float = CLEANUP_EVERY_SECONDS
) -> None:
    while not stop.is_set():
        try:
            deleted = await delete_expired_keys(keys)
            if deleted:
                log.info("expired idempotency keys deleted", count=deleted)
        except Exception:
            # The database away for a moment: try again next time, the relay carries on.
            log.warning("deleting expired idempotency keys failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
