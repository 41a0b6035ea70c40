"""The scripts read model: one row per live script, with what the messages sent from it did
(sent, purchased, revenue); and the account's sensitive words, for reading them back."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.message import Message, message_id_of
from domain.script import Script
from domain.sensitive_words import SensitiveWords
from projections.base import TableRows

_SCRIPT_COLUMNS = (
    *("script_id", "tenant_id", "name", "content", "price_cents", "attachments"),
    *("created_at", "updated_at", "version", "sent", "purchased", "revenue_cents", "shared"),
)
_MESSAGE_COLUMNS = ("message_id", "tenant_id", "script_id", "sent", "purchased")
_MESSAGE_KEY = ("message_id", "tenant_id")
_MESSAGE_KEY_TYPES = ("uuid", "text")

_SCRIPT_EVENTS = frozenset({Script.Created, Script.Updated, Script.Deleted})
# Of a message's events, those a script's metrics count; Queued names the script.
_MESSAGE_EVENTS = frozenset({Message.Queued, Message.Sent, Message.Purchased})
_HANDLED = _SCRIPT_EVENTS | _MESSAGE_EVENTS


class ScriptsProjection:
    name = "scripts"
    tables = ("scripts", "script_messages")

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Folded over the rows in memory (see projections.base)."""
        events = [
            r
            for r in batch
            if type(r.event) in _HANDLED
            and not (type(r.event) is Message.Queued and r.event.script_id is None)
        ]
        if not events:
            return
        messages = TableRows("script_messages", _MESSAGE_KEY, _MESSAGE_KEY_TYPES, _MESSAGE_COLUMNS)
        # A message queued in this batch has no stored row to look for.
        queued_now = {_message_key(r) for r in events if type(r.event) is Message.Queued}
        await messages.load(
            sql,
            {_message_key(r) for r in events if type(r.event) in _MESSAGE_EVENTS} - queued_now,
        )
        script_ids = {row["script_id"] for row in messages.present()} | {
            r.event.script_id
            for r in events
            if type(r.event) is Message.Queued and r.event.script_id is not None
        }
        script_ids |= {_script_id(r.stream_id) for r in events if type(r.event) in _SCRIPT_EVENTS}
        scripts = TableRows("scripts", "script_id", "bigint", _SCRIPT_COLUMNS)
        await scripts.load(sql, script_ids)
        for recorded in events:
            if type(recorded.event) in _SCRIPT_EVENTS:
                _fold_script(scripts, recorded)
            else:
                _fold_message(scripts, messages, recorded)
        await messages.flush(sql)
        await scripts.flush(sql)


def _fold_script(scripts: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    script_id = _script_id(recorded.stream_id)
    row = scripts.get(script_id)
    if isinstance(event, Script.Created):
        if row is None:
            scripts.put(
                script_id,
                {
                    "tenant_id": event.tenant,
                    "shared": event.shared,
                    **_contents(event),
                    "created_at": event.timestamp,
                    "updated_at": event.timestamp,
                    "version": event.originator_version,
                    "sent": 0,
                    "purchased": 0,
                    "revenue_cents": 0,
                },
            )
        return
    if row is None:
        return
    if isinstance(event, Script.Deleted):
        scripts.remove(script_id)
        return
    row.update(_contents(event), updated_at=event.timestamp, version=event.originator_version)


def _contents(event: Script.Created | Script.Updated) -> dict[str, object]:
    return {
        "name": event.name,
        "content": event.content,
        "price_cents": event.price_cents,
        "attachments": [{"type": kind, "url": url} for kind, url in event.attachments],
    }


def _fold_message(scripts: TableRows, messages: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    key = _message_key(recorded)
    if isinstance(event, Message.Queued):
        if event.script_id is not None and messages.get(key) is None:
            messages.put(key, {"script_id": event.script_id, "sent": False, "purchased": False})
        return
    message = messages.get(key)
    if message is None:  # not sent from a script
        return
    script = scripts.get(message["script_id"])
    if isinstance(event, Message.Sent) and not message["sent"]:
        message["sent"] = True
        if script is not None:
            script["sent"] += 1
    elif isinstance(event, Message.Purchased) and not message["purchased"]:
        message["purchased"] = True
        if script is not None:
            script["purchased"] += 1
            script["revenue_cents"] += event.amount_cents


def _script_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("script-"))


def _message_key(recorded: RecordedEvent) -> tuple[str, str]:
    return message_id_of(recorded.stream_id), recorded.metadata.tenant


_WORDS_EVENTS = frozenset({SensitiveWords.Created, SensitiveWords.Replaced})


class SensitiveWordsProjection:
    name = "sensitive_words"
    tables = ("sensitive_words",)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        events = [r for r in batch if type(r.event) in _WORDS_EVENTS]
        if not events:
            return
        rows = TableRows(
            "sensitive_words", "tenant_id", "text", ("tenant_id", "words", "updated_at", "version")
        )
        await rows.load(sql, {r.metadata.tenant for r in events})
        for recorded in events:
            event = recorded.event
            rows.put(
                recorded.metadata.tenant,
                {
                    "words": list(event.words),
                    "updated_at": event.timestamp,
                    "version": event.originator_version,
                },
            )
        await rows.flush(sql)
