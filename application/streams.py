"""Load an aggregate from its stream and save what it decided: the write side needs no more.

Every command runs the same three steps (Emmett's handler): read the stream, decide, append
with the expected version; and, when another writer got in first, it runs them again, under
one retry policy (``retry_on_conflict``). ``handle`` is those steps; its hooks cover the
commands that read a stream from more than one place (messages), append more than the
aggregate's own events (other streams, outbox rows, a once-only key), or start from an
aggregate the caller has just read.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from eventsourcing.domain import BaseAggregate

from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused, NotFound
from application.ports import EventStore
from domain.base import DomainEvent

A = TypeVar("A", bound=BaseAggregate[str])
T = TypeVar("T")
R = TypeVar("R")

CONFLICT_RETRIES = 6
# Full-jitter backoff between tries: a person's command (pause, cancel) racing a worker that
# appends to the same stream in a tight loop (a campaign's fan-out) would otherwise lose every
# immediate retry to it. The five sleeps are at most 0.005 * (2 + 4 + 8 + 16 + 32) = 0.31 s
# together, half that on average.
CONFLICT_BACKOFF_SECONDS = 0.005

Loaded = tuple[Any, int]  # an aggregate and the position of its stream's last event


async def load(store: EventStore, stream_id: str, *, tenant: str) -> Loaded:
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


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry: bool = True,
    tries: int | None = None,
    before_retry: Callable[[ConcurrencyError], Awaitable[None]] | None = None,
) -> T:
    """Re-run read-decide-append when another writer got in first (Emmett's handler loop):
    the one retry policy of every command.

    Callers that pinned an expected version (If-Match) must see the conflict instead
    (``retry`` False). ``tries``: CONFLICT_RETRIES unless a caller has a reason to give up
    sooner (an inline fan-out leaves its chunk to the worker after one). ``before_retry``:
    what to do, besides the backoff, before trying again (wait for a view to catch up).
    """
    tries = (CONFLICT_RETRIES if tries is None else tries) if retry else 1
    for tried in range(1, tries + 1):
        try:
            return await attempt()
        except MessageIdReused:
            raise  # a refusal, not a race: trying again meets the same message
        except ConcurrencyError as error:
            if tried >= tries:
                raise
            await asyncio.sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS * 2**tried))  # noqa: S311
            if before_retry is not None:
                await before_retry(error)
    raise ConcurrencyError("no attempt made")


@dataclass(frozen=True)
class Handled(Generic[R]):
    """What a command left: the aggregate, what ``decide`` answered, and the position a reader
    can wait for (the last event appended, or the stream's last if nothing was)."""

    aggregate: Any
    decision: R
    position: int
    appended: bool


async def handle(
    store: EventStore,
    stream_id: str,
    decide: Callable[[Any], Awaitable[R]],
    ctx: CommandContext,
    *,
    stream_type: str,
    load_stream: Callable[[], Awaitable[Loaded]] | None = None,
    append: Callable[[Any, R], Awaitable[int | None]] | None = None,
    loaded: Loaded | None = None,
    hold: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    retry: bool = True,
) -> Handled[R]:
    """Read the stream, let ``decide`` change the aggregate, append what it decided at the
    version read; again from a fresh read on a conflict (see ``retry_on_conflict``).

    Hooks: ``load_stream`` reads the aggregate (default: ``stream_id`` of ``ctx.tenant``);
    ``append`` appends what the aggregate decided, given ``decide``'s answer, and returns
    the last position or None if it appended nothing (default: the aggregate's own events);
    ``loaded``: the aggregate as the caller has just read it, decided on by the first try
    only (a later try reads the stream again); ``hold``: what each try holds from its read
    to its append (a campaign's turn)."""

    async def read() -> Loaded:
        if load_stream is not None:
            return await load_stream()
        return await load(store, stream_id, tenant=ctx.tenant)

    async def write(aggregate: Any, decision: R) -> int | None:
        if append is not None:
            return await append(aggregate, decision)
        return await save(store, aggregate, stream_type, ctx)

    first = loaded

    async def attempt() -> Handled[R]:
        if hold is None:
            return await one_try()
        async with hold():
            return await one_try()

    async def one_try() -> Handled[R]:
        nonlocal first
        if first is not None:
            (aggregate, position), first = first, None
        else:
            aggregate, position = await read()
        decision = await decide(aggregate)
        appended = await write(aggregate, decision)
        return Handled(
            aggregate, decision, position if appended is None else appended, appended is not None
        )

    return await retry_on_conflict(attempt, retry=retry)
