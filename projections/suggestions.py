"""The reply suggestions' index: the account's one-to-one replies that worked, each with the fan
message it answered, as templates (the fan's name a placeholder again).

A reply "worked" when the fan wrote back before the account's next message (``replied``), or
bought it (``purchased``, whenever that came). Its context is the fan's last message before
it. Messages of campaigns are no one's reply: they end the wait for a reply to the message
before them but are never candidates. An erased fan's rows (their words, what was written to
them, their name) are deleted; a replay after the erasure reads their content as None and
writes none again.
"""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from domain.reply_suggestions import templatise
from projections.base import Row, TableRows

_REPLY_COLUMNS = (
    "message_id",
    "tenant_id",
    "conversation_id",
    "fan_id",
    "context_message_id",
    "context",
    "template",
    "priced",
    "outcome",
    "queued_at",
)
_THREAD_COLUMNS = (
    "conversation_id",
    "tenant_id",
    "fan_id",
    "last_in_message_id",
    "last_in_content",
    "pending_message_id",
)
_FAN_COLUMNS = ("fan_id", "tenant_id", "name", "handle")
_HANDLED = frozenset(
    {
        Fan.Created,
        Fan.Updated,
        Fan.Erased,
        InboundMessage.Received,
        Message.Queued,
        Message.Purchased,
    }
)
_TABLES = ("suggestion_replies", "suggestion_threads", "suggestion_fans")


class SuggestionsProjection:
    name = "suggestions"
    tables = _TABLES

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Folded over the rows in memory (see projections.base)."""
        handled = [r for r in batch if type(r.event) in _HANDLED]
        if not handled:
            return
        fold = _Fold()
        await fold.load(sql, handled)
        erased = []
        for recorded in handled:
            if type(recorded.event) is Fan.Erased:
                erased.append(_fan_id(recorded.stream_id))
            else:
                fold.apply(recorded)
        await fold.flush(sql)
        if erased:
            # After the batch's own rows are written: an erased fan gets no new words (its
            # later content reads as None), so deleting all of theirs now is what deleting at
            # the erasure would have left.
            for table in _TABLES:
                await sql.execute(f"DELETE FROM {table} WHERE fan_id = ANY($1::bigint[])", erased)


class _Fold:
    def __init__(self) -> None:
        self.replies = TableRows(
            "suggestion_replies", ("message_id", "tenant_id"), ("uuid", "text"), _REPLY_COLUMNS
        )
        self.threads = TableRows("suggestion_threads", "conversation_id", "bigint", _THREAD_COLUMNS)
        self.fans = TableRows("suggestion_fans", "fan_id", "bigint", _FAN_COLUMNS)

    async def load(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        conversations = {
            r.event.conversation_id
            for r in batch
            if type(r.event) in (InboundMessage.Received, Message.Queued)
        }
        await self.threads.load(sql, conversations)
        await self.fans.load(
            sql,
            {r.event.fan_id for r in batch if type(r.event) is Message.Queued}
            | {_fan_id(r.stream_id) for r in batch if type(r.event) in (Fan.Created, Fan.Updated)},
        )
        pending = {
            (row["pending_message_id"], row["tenant_id"])
            for row in self.threads.present()
            if row["pending_message_id"] is not None
        }
        purchased = {
            (message_id_of(r.stream_id), r.metadata.tenant)
            for r in batch
            if type(r.event) is Message.Purchased
        }
        await self.replies.load(sql, {(str(m), t) for m, t in pending} | purchased)

    def apply(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        kind = type(event)
        if kind in (Fan.Created, Fan.Updated):
            fan_id = _fan_id(recorded.stream_id)
            self.fans.put(
                fan_id,
                {"tenant_id": recorded.metadata.tenant, "name": event.name, "handle": event.handle},
            )
        elif kind is InboundMessage.Received:
            self._received(event)
        elif kind is Message.Queued:
            self._queued(event)
        elif kind is Message.Purchased:
            reply = self.replies.get((message_id_of(recorded.stream_id), recorded.metadata.tenant))
            if reply is not None:
                reply["outcome"] = "purchased"

    def _received(self, event: InboundMessage.Received) -> None:
        if event.content is None:  # the fan was erased: nothing of theirs is kept
            return
        thread = self.threads.get(event.conversation_id)
        if thread is None:
            thread = {"tenant_id": event.tenant, "fan_id": event.fan_id}
            self.threads.put(event.conversation_id, thread)
        waiting = self._pending_reply(thread)
        if waiting is not None and waiting["outcome"] is None:
            waiting["outcome"] = "replied"
        thread.update(
            last_in_message_id=event.message_id,
            last_in_content=event.content,
            pending_message_id=None,
        )

    def _queued(self, event: Message.Queued) -> None:
        thread = self.threads.get(event.conversation_id)
        if thread is None:
            return  # the fan never wrote: nothing here answers anything
        waiting = self._pending_reply(thread)
        if waiting is not None and waiting["outcome"] is None and not waiting["priced"]:
            # Free, and the account wrote again before the fan answered: it can no longer
            # get an outcome (a priced one still may be bought).
            self.replies.remove((str(thread["pending_message_id"]), thread["tenant_id"]))
        thread["pending_message_id"] = None
        if event.campaign_id is not None or event.content is None:
            return
        if thread["last_in_content"] is None:
            return
        fan = self.fans.get(event.fan_id) or {}
        self.replies.put(
            (event.message_id, event.tenant),
            {
                "conversation_id": event.conversation_id,
                "fan_id": event.fan_id,
                "context_message_id": thread["last_in_message_id"],
                "context": thread["last_in_content"],
                "template": templatise(
                    event.content, name=fan.get("name"), handle=fan.get("handle")
                ),
                "priced": event.price_cents > 0,
                "outcome": None,
                "queued_at": event.timestamp,
            },
        )
        thread["pending_message_id"] = event.message_id

    def _pending_reply(self, thread: Row) -> Row | None:
        pending = thread.get("pending_message_id")
        if pending is None:
            return None
        return self.replies.get((str(pending), thread["tenant_id"]))

    async def flush(self, sql: Sql) -> None:
        await self.fans.flush(sql)
        await self.threads.flush(sql)
        await self.replies.flush(sql)


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
