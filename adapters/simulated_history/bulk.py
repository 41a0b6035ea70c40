"""The fast path: the same decisions as the handlers, appended a simulated day at a time.

Going through every handler costs each action a read of its stream and a transaction of its
own (see bench/histories.py for the figures). This writer is the only writer of the account's
streams while it runs, so it keeps each fan's aggregates in memory and lets the same domain
methods the handlers call decide (``Fan.register``, ``Conversation.start`` with
``Fan.open_conversation``, ``Message.queue`` then ``mark_sent``, ``mark_read``, ``purchase``
with ``Fan.record_purchase``, ``InboundMessage.receive``), each event dated at its action's
moment and recorded under the actor its handler would record (the creator, the sender, the
platform's webhook). A day's events are appended through the same ``EventStore.append_all``,
many streams per statement. tests/integration/test_simulated_history.py checks that both
paths write the same events.

What it leaves out, being no events: the outbox rows (nothing is left to send), the webhook
ids' idempotency records, and the version holds the handlers add to guard against concurrent
writers (there are none).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import msgspec

from adapters.bootstrap import Container
from adapters.simulated_history.timeline import Action, FanLife
from adapters.simulated_history.writer import (
    CREATOR_TEXTS,
    FAN_TEXTS,
    OFFER_TEXTS,
    TransactionImports,
    by_day,
    moment,
    platform_id,
)
from application.context import CommandContext
from application.ports import EventMetadata, StreamWrite
from domain.conversation import Conversation
from domain.fan import Fan, fan_stream_id
from domain.inbound import InboundMessage
from domain.message import Message

_INBOUND_IDS = uuid.UUID("0f6f2d4e-8b7a-4d55-9b1e-3f8d1c2e7a90")  # application/webhooks.py's
_MESSAGE_KINDS = ("creator", "read", "bought")
STREAMS_PER_APPEND = 400
WRITERS = 4


class _Day:
    """The day's events per stream, in segments of one actor each, and the fan each stream
    belongs to: a fan's streams share its data key (sealing its personal fields), which the
    first append needing it creates, so they go in one statement."""

    def __init__(self) -> None:
        self.segments: dict[str, list[StreamWrite]] = defaultdict(list)
        self.owner: dict[str, int] = {}

    def add(
        self, owner: int, aggregate: Any, stream_type: str, metadata: EventMetadata, at: datetime
    ) -> None:
        self.owner[aggregate.id] = owner
        events = [dataclasses.replace(e, timestamp=at) for e in aggregate.collect_events()]
        if not events:
            return
        segments = self.segments[aggregate.id]
        if segments and segments[-1].metadata is metadata:
            last = segments[-1]
            segments[-1] = msgspec.structs.replace(last, events=[*last.events, *events])
            return
        first = events[0].originator_version - 1
        segments.append(StreamWrite(aggregate.id, stream_type, events, first, metadata=metadata))

    def chunks(self, size: int) -> list[list[list[StreamWrite]]]:
        """Each stream's n-th segment in round n (a round's streams are distinct), a round cut
        into chunks of about ``size`` streams, never between two streams of one fan."""
        rounds: list[list[StreamWrite]] = []
        for segments in self.segments.values():
            for n, write in enumerate(segments):
                if n == len(rounds):
                    rounds.append([])
                rounds[n].append(write)
        cut: list[list[list[StreamWrite]]] = []
        for writes in rounds:
            writes.sort(key=lambda write: self.owner[write.stream_id])
            chunks: list[list[StreamWrite]] = [[]]
            for write in writes:
                last = chunks[-1]
                owner = self.owner[write.stream_id]
                if len(last) >= size and self.owner[last[-1].stream_id] != owner:
                    chunks.append(last := [])
                last.append(write)
            cut.append(chunks)
        return cut


class _FanState:
    def __init__(self, life: FanLife, fan_id: int, conversation_id: int) -> None:
        self.life, self.fan_id, self.conversation_id = life, fan_id, conversation_id
        self.fan: Fan | None = None
        self.messages: dict[int, Message] = {}
        self.written = 0
        # The kind of the last action naming each of the creator's messages: after it, the
        # message is no longer needed in memory.
        self.last_use = {a.key: a.kind for a in life.actions if a.kind in _MESSAGE_KINDS}

    def done_with(self, action: Action) -> None:
        if self.last_use.get(action.key) == action.kind:
            del self.messages[action.key]


class BulkWriter:
    def __init__(self, container: Container, account_id: str, concurrency: int = WRITERS) -> None:
        self.container, self.account_id = container, account_id
        self.writers = concurrency
        run = uuid.uuid4().hex[:12]
        creator = CommandContext(
            tenant=account_id, actor="cli:simulated-history", correlation_id=f"sim:{run}"
        )
        self.creator = creator.metadata()
        self.sender = msgspec.structs.replace(creator, actor="sender").metadata()
        self.hooks = msgspec.structs.replace(creator, actor="webhook").metadata()
        self.imports = TransactionImports(container, creator)
        self.appended = 0
        self.last_position = 0

    @property
    def events_written(self) -> int:
        return self.appended + self.imports.written

    async def write(self, lives: list[FanLife], start: float) -> dict[int, _FanState]:
        ids = self.container.ids
        fan_ids = await ids.next_ids("fan", len(lives))
        conversation_ids = await ids.next_ids("conversation", len(lives))
        fans = {
            life.index: _FanState(life, fan_id, conversation)
            for life, fan_id, conversation in zip(lives, fan_ids, conversation_ids, strict=True)
        }
        log = _Day()
        for life in lives:
            self._do(fans[life.index], life.actions[0], log)  # the joins
        await self._append(log)
        await self.imports.run(lives, self.last_position)
        await self._reload(fans)
        # A day is decided while the day before is appended: Python and Postgres then share
        # the machine's cores instead of taking turns. The decisions yield to the loop every
        # few hundred actions, so the appends in flight are sent and answered meanwhile.
        appending: asyncio.Task[None] | None = None
        for day in by_day(lives, start).values():
            log = _Day()
            moments = [(a.at, index, a) for index, actions in day.items() for a in actions]
            for n, (_, index, action) in enumerate(sorted(moments, key=lambda m: m[:2])):
                self._do(fans[index], action, log)
                if n % 200 == 199:
                    await asyncio.sleep(0)
            if appending is not None:
                await appending
            appending = asyncio.create_task(self._append(log))
        if appending is not None:
            await appending
        return fans

    async def _reload(self, fans: dict[int, _FanState]) -> None:
        """The fans as the import left them (their streams moved on)."""
        states = list(fans.values())
        for first in range(0, len(states), 1000):
            chunk = {fan_stream_id(s.fan_id): s for s in states[first : first + 1000]}
            for stream_id, events in (
                await self.container.events.load_streams(list(chunk))
            ).items():
                fan = None
                for recorded in events:
                    fan = recorded.event.mutate(fan)
                assert isinstance(fan, Fan)
                chunk[stream_id].fan = fan

    def _do(self, state: _FanState, action: Action, log: _Day) -> None:
        when, tenant = moment(action.at), self.account_id
        if action.kind == "join":
            state.fan = Fan.register(
                fan_id=state.fan_id,
                tenant=tenant,
                platform_id=platform_id(state.life.index),
                name=f"Simulated fan {state.life.index}",
                subscribed_at=when.date(),
            )
            log.add(state.life.index, state.fan, "fan", self.creator, when)
            return
        fan = state.fan
        assert fan is not None
        if action.kind in ("creator", "fan") and fan.conversation_id is None:
            actor = self.creator if action.kind == "creator" else self.hooks
            conversation = Conversation.start(
                conversation_id=state.conversation_id,
                tenant=tenant,
                fan_id=fan.fan_id,
                platform=fan.platform,
            )
            fan.open_conversation(conversation.conversation_id)
            log.add(state.life.index, fan, "fan", actor, when)
            log.add(state.life.index, conversation, "conversation", actor, when)
        assert fan.conversation_id is not None
        if action.kind == "creator":
            texts = OFFER_TEXTS if action.price_cents else CREATOR_TEXTS
            message = Message.queue(
                message_id=str(uuid.uuid4()),
                tenant=tenant,
                conversation_id=fan.conversation_id,
                fan_id=fan.fan_id,
                content=texts[action.key % len(texts)],
                price_cents=action.price_cents,
                platform=fan.platform,
            )
            log.add(state.life.index, message, "message", self.creator, when)
            message.mark_sent(f"sim_{message.message_id}")
            log.add(state.life.index, message, "message", self.sender, moment(action.at + 2.0))
            state.messages[action.key] = message
        elif action.kind == "fan":
            state.written += 1
            platform_message = f"sim-{state.life.index}-{state.written}"
            inbound = InboundMessage.receive(
                message_id=str(uuid.uuid5(_INBOUND_IDS, f"{tenant}:{platform_message}")),
                tenant=tenant,
                conversation_id=fan.conversation_id,
                fan_id=fan.fan_id,
                content=FAN_TEXTS[state.written % len(FAN_TEXTS)],
                platform_message_id=platform_message,
                platform=fan.platform,
            )
            log.add(state.life.index, inbound, "message", self.hooks, when)
        elif action.kind == "read":
            state.written += 1
            message = state.messages[action.key]
            message.mark_read()
            log.add(state.life.index, message, "message", self.hooks, when)
        else:
            state.written += 1
            message = state.messages[action.key]
            if message.purchase(action.price_cents):
                fan.record_purchase(action.price_cents, message.message_id)
            log.add(state.life.index, message, "message", self.hooks, when)
            log.add(state.life.index, fan, "fan", self.hooks, when)
        if action.kind in _MESSAGE_KINDS:
            state.done_with(action)

    async def _append(self, log: _Day) -> None:
        gate = asyncio.Semaphore(self.writers)
        store = self.container.events

        async def append(chunk: list[StreamWrite]) -> None:
            async with gate:
                assert chunk[0].metadata is not None
                positions = await store.append_all(chunk, metadata=chunk[0].metadata)
            self.appended += len(positions)
            self.last_position = max(self.last_position, *positions)

        for chunks in log.chunks(STREAMS_PER_APPEND):
            await asyncio.gather(*(append(chunk) for chunk in chunks))
