"""One tail of the log per API process, shared by every live client it holds.

The tail reads the global log through the event store (commit order, below the snapshot's
xmin: adapters/postgres/event_store/store.py), wakes on the ``events`` notification and polls
as a fallback, builds each batch's updates once, and offers them to the subscriptions of the
batch's accounts. Its cost grows with the log, not with the clients: a client costs a queue.

Beside the log it sends summaries (adapters/live/summaries.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from adapters import metrics
from adapters.live.builder import FactsCache, Tagged, UpdateBuilder
from adapters.live.subscription import QUEUE_SIZE, Filters, Subscription
from adapters.live.summaries import QUEUE_STATUS_SECONDS, Summaries
from adapters.live.updates import Update
from adapters.postgres.campaign_read_model import PostgresCampaignReadModel
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.listen import ChannelListener
from adapters.queue_status import QueueStatusReader
from application.message_queries import MessagingReadModel
from application.ports import Checkpoint, RecordedEvent
from domain.workspace import Workspace

log = structlog.get_logger(__name__)

BATCH = 500
POLL_SECONDS = 1.0
# Below the idle timeouts of common proxies and load balancers (60 s on AWS's).
HEARTBEAT_SECONDS = 15.0


class LiveHub:
    def __init__(
        self,
        store: PostgresEventStore,
        database_url: str,
        messaging: MessagingReadModel,
        campaigns: PostgresCampaignReadModel,
        queue_status: QueueStatusReader,
        *,
        poll_seconds: float = POLL_SECONDS,
        queue_status_seconds: float = QUEUE_STATUS_SECONDS,
        queue_size: int = QUEUE_SIZE,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.queue_size = queue_size
        # How long a client's stream may stay silent before it is sent a heartbeat.
        self.heartbeat_seconds = heartbeat_seconds
        self.store = store
        self.messaging = messaging
        self._listener = ChannelListener(database_url, "events")
        self._poll_seconds = poll_seconds
        self.facts = FactsCache(store)
        self._builder = UpdateBuilder(self.facts, messaging)
        self.checkpoint = Checkpoint()
        self._by_tenant: dict[str, set[Subscription]] = {}
        self._summaries = Summaries(
            self._offer_outside_log,
            self._by_tenant.keys,
            queue_status,
            campaigns,
            queue_status_seconds,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: asyncio.Lock | None = None
        # The tail's cost, seen from outside as the live.* metrics: every read of the log
        # (an empty one too: the polls and the wake-ups that found nothing are queries all the
        # same), those that found events, and the updates offered to subscriptions.
        self.reads = 0
        self.batches_read = 0
        self.updates_offered = 0

    async def subscribe(
        self, tenant: str, filters: Filters, member_id: str | None = None
    ) -> Subscription:
        """A new subscription, queued everything the tail dispatches from now on; its
        ``joined_at`` is the last place the tail dispatched, which a replay reaches up to."""
        await self._start()
        subscription = Subscription(
            tenant, filters, self.checkpoint, asyncio.Queue(self.queue_size), member_id
        )
        self._by_tenant.setdefault(tenant, set()).add(subscription)
        metrics.live_clients(1)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        held = self._by_tenant.get(subscription.tenant)
        if held is not None and subscription in held:
            held.discard(subscription)
            metrics.live_clients(-1)
            if not held:
                del self._by_tenant[subscription.tenant]

    def replay_builder(self) -> UpdateBuilder:
        """A builder of its own for a client's replay (its unread counts are its own), sharing
        the hub's message facts."""
        return UpdateBuilder(self.facts, self.messaging)

    @property
    def clients(self) -> int:
        return sum(len(held) for held in self._by_tenant.values())

    async def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._tasks:
                return
            # Live from the head: what came before is for replays (``?after=``).
            self.checkpoint = await self.store.head()
            self._tasks = [
                asyncio.create_task(self._tail(), name="live tail"),
                asyncio.create_task(
                    self._summaries.queue_status_forever(), name="live queue status"
                ),
                asyncio.create_task(
                    self._summaries.progress_forever(), name="live campaign progress"
                ),
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._listener.close()

    async def _tail(self) -> None:
        backoff = self._poll_seconds
        while True:
            try:
                await self._listener.ensure()
                self._listener.notified.clear()
                if await self.read_next():
                    backoff = self._poll_seconds
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._listener.notified.wait(), self._poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:  # an outage or a bug: keep tailing; clients wait meanwhile
                log.exception("live tail failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def read_next(self) -> int:
        """Read, build and dispatch the next batch of the log; how many events it held."""
        self.reads += 1
        metrics.live_tail_read()
        batch = await self.store.read_all(self.checkpoint, BATCH)
        if not batch:
            return 0
        self.batches_read += 1
        metrics.live_tail_batch()
        tagged = await self._builder.build(batch)
        # From here to the end, no await: a subscription joining now sees this checkpoint
        # and this batch in its queue together, or neither.
        self.checkpoint = _last(batch)
        self.dispatch(tagged)
        self._revoke_removed_members(batch)
        return len(batch)

    def _revoke_removed_members(self, batch: Sequence[RecordedEvent]) -> None:
        """A member removed from its workspace loses its streams, on every account, as its
        keys stop working: from the log, so in every process, with no query."""
        removed = {
            recorded.event.member_id
            for recorded in batch
            if isinstance(recorded.event, Workspace.MemberRemoved)
        }
        if not removed:
            return
        for held in self._by_tenant.values():
            for subscription in held:
                if subscription.member_id in removed:
                    subscription.end("revoked")

    def dispatch(self, tagged: Sequence[Tagged]) -> None:
        offered = 0
        for item in tagged:
            if item.campaign_id is not None:
                self._summaries.moved(item.tenant, item.campaign_id)
            held = self._by_tenant.get(item.tenant)
            if held and item.update:
                offered += len(held)
                for subscription in held:
                    subscription.offer(item.key, item.update)
        self._offered(offered)

    def _offer_outside_log(self, tenant: str, update: Update) -> None:
        held = self._by_tenant.get(tenant, ())
        for subscription in held:
            subscription.offer(None, update)
        self._offered(len(held))

    def _offered(self, count: int) -> None:
        # Once per batch, not per subscription: a metric's add costs microseconds.
        if count:
            self.updates_offered += count
            metrics.live_updates_offered(count)


def _last(batch: Sequence[RecordedEvent]) -> Checkpoint:
    return Checkpoint(batch[-1].transaction_id, batch[-1].position)


def live_hub(container: Any) -> LiveHub:
    """The process's hub, built from the composition root's container; it starts tailing
    when its first client subscribes."""
    return LiveHub(
        container.events,
        container.settings.database_url,
        container.messaging,
        container.campaigns,
        container.queue_status,
    )
