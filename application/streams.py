"""Load an aggregate from its stream and save what it decided: the write side needs no more."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from eventsourcing.domain import BaseAggregate

from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused, NotFound
from application.ports import EventStore
from domain.base import DomainEvent

A = TypeVar("A", bound=BaseAggregate[str])
T = TypeVar("T")

CONFLICT_RETRIES = 6
# Full-jitter backoff between tries: a person's command (pause, cancel) racing a worker that
# appends to the same stream in a tight loop (a campaign's fan-out) would otherwise lose every
# immediate retry to it. All five sleeps together: 0.16 s on average, 0.31 s at most.
CONFLICT_BACKOFF_SECONDS = 0.005


async def load(store: EventStore, stream_id: str, *, tenant: str) -> tuple[Any, int]:
    """Replay a stream; a stream of another tenant is reported as missing, never as forbidden."""
    recorded = await store.load(stream_id)
    if not recorded or recorded[0].metadata.tenant != tenant:
        raise NotFound(stream_id)
    aggregate: Any = None
    for item in recorded:
        aggregate = item.event.mutate(aggregate)
    return aggregate, recorded[-1].position


async def save(
    store: EventStore, aggregate: A, stream_type: str, ctx: CommandContext
) -> int | None:
    """Append the aggregate's pending events; returns the last position, None if none."""
    # Every event of our aggregates derives from domain.base.DomainEvent.
    pending = cast(list[DomainEvent], aggregate.collect_events())
    if not pending:
        return None
    positions = await store.append(
        aggregate.id,
        stream_type,
        pending,
        expected_version=pending[0].originator_version - 1,
        metadata=ctx.metadata(),
    )
    return positions[-1]


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], *, retry: bool) -> T:
    """Re-run read-decide-append when another writer got in first (Emmett's handler loop).

    Callers that pinned an expected version (If-Match) must see the conflict instead.
    """
    tries = CONFLICT_RETRIES if retry else 1
    for tried in range(1, tries + 1):
        try:
            return await attempt()
        except MessageIdReused:
            raise  # a refusal, not a race: trying again meets the same message
        except ConcurrencyError:
            if tried == tries:
                raise
            await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * 2**tried))  # noqa: S311
    raise AssertionError("unreachable")
