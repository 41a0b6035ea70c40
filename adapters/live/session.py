"""A client's stream: the replay of what it missed (``after``), then the hub's live updates,
with heartbeats; the same for the WebSocket and for Server-Sent Events.

No gap and no duplicate: the subscription joins the hub first (from then on every update is
queued), then the replay reads the log from the client's position up to where the hub stood
when it joined, and the queue is drained after it. Both are in the log's commit order, and an
update at or before the last one handed over is dropped (``Subscription.take``), so where the
replay and the queue overlap nothing is sent twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import asyncpg

from adapters.live.hub import BATCH, LiveHub
from adapters.live.subscription import AFTER_ALL, WAKE, Filters, Item, Subscription
from adapters.live.updates import Update
from adapters.postgres.event_store import questions
from application.ports import Checkpoint

# A client that missed more than this many events (every account's) reloads its lists rather
# than replays them: replaying reads the whole log in between, the other accounts' included.
REPLAY_WINDOW = 10_000

HEARTBEAT: Update = {"type": "heartbeat"}


REVOKED: Update = {
    "type": "revoked",
    "position": None,
    "reason": "the member was removed from the workspace",
}


def resync(reason: str) -> Update:
    return {"type": "resync", "position": None, "reason": reason}


def live(subscription: Subscription) -> Update:
    """Sent once, when the stream goes live (after the replay, if any): every update up to
    ``position`` has been sent. A client that loads its lists now asks them for
    ``minPosition=position`` and misses nothing between them and the stream; it may resume
    ``after`` it. Null while the log is empty."""
    position = subscription.joined_at.position or None
    if position is not None:
        subscription.sent_position = position
    return {"type": "live", "position": position}


def slow_client(subscription: Subscription) -> Update:
    return {
        "type": "closing",
        "position": None,
        "reason": "the client read too slowly; reconnect with after=resumeAfter",
        "resumeAfter": subscription.sent_position,
    }


async def resume_point(pool: asyncpg.Pool, after: int) -> Checkpoint | str:
    """Where to replay from, or why the client must reload instead."""
    found = await questions.position_in_log(pool, after)
    if found is None:
        return f"no event holds position {after}: reload and connect without after"
    start = Checkpoint(*found)
    missed = await questions.events_after(pool, *found, REPLAY_WINDOW + 1)
    if missed > REPLAY_WINDOW:
        return f"more than {REPLAY_WINDOW} events since position {after}: reload the lists"
    return start


async def stream(
    hub: LiveHub,
    pool: asyncpg.Pool,
    tenant: str,
    filters: Filters,
    after: int | None,
    member_id: str | None = None,
) -> AsyncGenerator[Update, None]:
    """Every update for the client (the replay, ``live``, then the hub's), heartbeats when
    idle; ends after a ``resync``, a
    ``closing`` (a client too slow for its queue) or a ``revoked`` update (``member_id``
    removed from its workspace)."""
    start: Checkpoint | None = None
    if after is not None:
        found = await resume_point(pool, after)
        if isinstance(found, str):
            yield resync(found)
            return
        start = found
    subscription = await hub.subscribe(tenant, filters, member_id)
    try:
        if start is not None:
            async for update in _replay(hub, subscription, start):
                yield update
        yield live(subscription)
        while not subscription.ended.is_set():
            try:
                key, update = await _next(subscription, hub.heartbeat_seconds)
            except TimeoutError:
                yield HEARTBEAT
                continue
            if update is not WAKE and subscription.take(key, update):
                yield update
        yield slow_client(subscription) if subscription.why == "slow" else REVOKED
    finally:
        hub.unsubscribe(subscription)


async def _next(subscription: Subscription, heartbeat_seconds: float) -> Item:
    """The next queued item; TimeoutError after ``heartbeat_seconds`` of silence. Items
    already queued are taken at once: wait_for costs a task and a turn of the loop per call,
    and a client paying that per update fell behind a hub dispatching 500 at a time."""
    try:
        return subscription.queue.get_nowait()
    except asyncio.QueueEmpty:
        return await asyncio.wait_for(subscription.queue.get(), heartbeat_seconds)


async def _replay(
    hub: LiveHub, subscription: Subscription, start: Checkpoint
) -> AsyncGenerator[Update, None]:
    subscription.sent = (start, AFTER_ALL)
    builder = hub.replay_builder()
    at = start
    while at < subscription.joined_at and not subscription.ended.is_set():
        batch = await hub.store.read_all(at, BATCH)
        if not batch:
            return
        for item in await builder.build(batch):
            if (
                item.tenant == subscription.tenant
                and item.update
                and subscription.filters.admit(item.update)
                and subscription.take(item.key, item.update)
            ):
                yield item.update
        at = Checkpoint(batch[-1].transaction_id, batch[-1].position)
