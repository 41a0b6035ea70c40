"""Turns batches of the log into tagged updates: the stateful part of the translation.

Later events of a message do not repeat its conversation, fan, campaign or price: those come
from its Queued event, cached per process (``FactsCache``) and, on a miss, read from the
event store once for the whole batch. Unread counts are kept per conversation as the ids of
the fan's messages since the creator's last one, so applying an event twice counts it once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

from adapters.live import updates
from adapters.live.updates import MessageFacts, Update
from adapters.postgres.event_store import PostgresEventStore
from application.message_queries import MessagingReadModel
from application.ports import Checkpoint, RecordedEvent
from domain.enrolment import Enrolment
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message

_FACTS_KEPT = 100_000
_CONVERSATIONS_KEPT = 20_000
# Unread counts are capped: "99+" is all a UI shows beyond this.
_UNREAD_KEPT = 100


class Tagged(NamedTuple):
    """An update, its place in the log (commit order), and the account it belongs to."""

    checkpoint: Checkpoint
    tenant: str
    update: Update
    campaign_id: int | None = None
    part: int = 0  # which of its event's updates (a message's, then its conversation's)

    @property
    def key(self) -> tuple[Checkpoint, int]:
        return (self.checkpoint, self.part)


class FactsCache:
    """Message stream id -> MessageFacts, least recently used evicted."""

    def __init__(self, store: PostgresEventStore, kept: int = _FACTS_KEPT) -> None:
        self._store = store
        self._kept = kept
        self._facts: OrderedDict[str, MessageFacts] = OrderedDict()

    def learn(self, stream_id: str, facts: MessageFacts) -> None:
        self._facts[stream_id] = facts
        self._facts.move_to_end(stream_id)
        if len(self._facts) > self._kept:
            self._facts.popitem(last=False)

    def get(self, stream_id: str) -> MessageFacts | None:
        return self._facts.get(stream_id)

    async def load_missing(self, batch: Sequence[RecordedEvent]) -> None:
        """One read of the store for every message of ``batch`` not known yet."""
        for recorded in batch:
            if isinstance(recorded.event, Message.Queued):
                self.learn(recorded.stream_id, updates.facts_of(recorded.event))
        missing = {
            recorded.stream_id
            for recorded in batch
            if isinstance(recorded.event, Message.Event) and recorded.stream_id not in self._facts
        }
        if not missing:
            return
        found = await self._store.load_streams(sorted(missing))
        for stream_id, events in found.items():
            if events and isinstance(events[0].event, Message.Queued):
                self.learn(stream_id, updates.facts_of(events[0].event))


class UnreadCounts:
    """Per conversation, the fan's messages since the creator's last one. A conversation seen
    for the first time is seeded from the messages read model (its newest page), so a count
    is right for conversations older than the process."""

    def __init__(self, messaging: MessagingReadModel) -> None:
        self._messaging = messaging
        self._unread: OrderedDict[int, set[str]] = OrderedDict()

    async def _known(self, tenant: str, conversation_id: int) -> set[str]:
        found = self._unread.get(conversation_id)
        if found is None:
            found = set()
            page = await self._messaging.list_messages(tenant, conversation_id, _UNREAD_KEPT, None)
            for message in page.items:  # newest first
                if message.direction != "in":
                    break
                found.add(message.message_id)
            self._unread[conversation_id] = found
            if len(self._unread) > _CONVERSATIONS_KEPT:
                self._unread.popitem(last=False)
        self._unread.move_to_end(conversation_id)
        return found

    async def received(self, tenant: str, conversation_id: int, message_id: str) -> int:
        unread = await self._known(tenant, conversation_id)
        if len(unread) < _UNREAD_KEPT:
            unread.add(message_id)
        return len(unread)

    async def answered(self, tenant: str, conversation_id: int) -> int:
        (await self._known(tenant, conversation_id)).clear()
        return 0


class UpdateBuilder:
    def __init__(self, facts: FactsCache, messaging: MessagingReadModel) -> None:
        self._facts = facts
        self._unread = UnreadCounts(messaging)

    async def build(self, batch: Sequence[RecordedEvent]) -> list[Tagged]:
        await self._facts.load_missing(batch)
        tagged: list[Tagged] = []
        for recorded in batch:
            tagged += await self._of(recorded)
        return tagged

    async def _of(self, recorded: RecordedEvent) -> list[Tagged]:
        checkpoint = Checkpoint(recorded.transaction_id, recorded.position)
        tenant = recorded.metadata.tenant
        event: Any = recorded.event
        found: list[Update] = []
        campaign_id: int | None = None
        if isinstance(event, Message.Event):
            facts = self._facts.get(recorded.stream_id)
            campaign_id = updates.campaign_id_of_event(recorded, facts)
            message = updates.message_update(recorded, facts)
            if message is not None:
                found.append(message)
            if isinstance(event, Message.Queued):
                unread = await self._unread.answered(tenant, event.conversation_id)
                found.append(
                    updates.conversation_update(
                        recorded, event.conversation_id, event.fan_id, unread
                    )
                )
        elif isinstance(event, InboundMessage.Received):
            found.append(updates.received_update(recorded))
            unread = await self._unread.received(tenant, event.conversation_id, event.message_id)
            found.append(
                updates.conversation_update(recorded, event.conversation_id, event.fan_id, unread)
            )
        elif isinstance(event, Fan.Event):
            fan = updates.fan_update(recorded)
            if fan is not None:
                found.append(fan)
        elif isinstance(event, Enrolment.Event):
            run = updates.sequence_update(recorded)
            if run is not None:
                found.append(run)
        else:
            campaign_id = updates.campaign_id_of_event(recorded, None)
        if not found and campaign_id is not None:
            # Nothing to show but the campaign moved: the hub's throttled progress says so.
            return [Tagged(checkpoint, tenant, {}, campaign_id)]
        return [
            Tagged(checkpoint, tenant, update, campaign_id, part)
            for part, update in enumerate(found)
        ]
