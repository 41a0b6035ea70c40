"""The fans read model: one row per live fan, for listing, search and sorting by value."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.fan import MAX_VALUE_CENTS, Fan
from projections.base import TableRows, folds_all

_INSERT = """
INSERT INTO fans (fan_id, tenant_id, platform, platform_id, name, handle, email, value_cents,
                  tags, notes, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)
ON CONFLICT (fan_id) DO NOTHING
"""

_UPDATE = """
UPDATE fans SET name = $2, handle = $3, email = $4, value_cents = $5, tags = $6, notes = $7,
                updated_at = $8, version = $9
WHERE fan_id = $1
"""


_COLUMNS = [
    "fan_id",
    "tenant_id",
    "platform",
    "platform_id",
    "name",
    "handle",
    "email",
    "value_cents",
    "tags",
    "notes",
    "created_at",
    "updated_at",
    "version",
    "conversation_id",
]

_FOLDED = frozenset(
    {
        Fan.Created,
        Fan.Updated,
        Fan.PurchaseRecorded,
        Fan.ConversationOpened,
        Fan.Deleted,
        Fan.Erased,
    }
)


class FansProjection:
    name = "fans"
    tables = ("fans",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """The same changes as ``apply`` event by event, folded over the rows in memory."""
        if not folds_all(batch, (Fan.Event,), _FOLDED):
            for recorded in batch:
                await self.apply(sql, recorded)
            return
        events = [r for r in batch if isinstance(r.event, Fan.Event)]
        if not events:
            return
        fans = TableRows("fans", "fan_id", "bigint", _COLUMNS)
        await fans.load(sql, (_fan_id(r.stream_id) for r in events))
        for recorded in events:
            _fold(fans, recorded)
        await fans.flush(sql)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        event = recorded.event
        if isinstance(event, Fan.Created):
            await sql.execute(
                _INSERT,
                event.fan_id,
                event.tenant,
                event.platform,
                event.platform_id,
                event.name,
                event.handle,
                event.email,
                event.value_cents,
                list(event.tags),
                event.notes,
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, Fan.Updated):
            await sql.execute(
                _UPDATE,
                _fan_id(recorded.stream_id),
                event.name,
                event.handle,
                event.email,
                event.value_cents,
                list(event.tags),
                event.notes,
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, Fan.PurchaseRecorded):
            await sql.execute(
                "UPDATE fans SET value_cents = least(value_cents + $2, $3), updated_at = $4,"
                " version = $5 WHERE fan_id = $1",
                _fan_id(recorded.stream_id),
                event.amount_cents,
                MAX_VALUE_CENTS,
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, Fan.ConversationOpened):
            # The version changes too: ETags must match the stream, and the campaign fan-out
            # reads (version, conversation) together from this row.
            await sql.execute(
                "UPDATE fans SET version = $2, conversation_id = $3 WHERE fan_id = $1",
                _fan_id(recorded.stream_id),
                recorded.version,
                event.conversation_id,
            )
        elif isinstance(event, Fan.Deleted | Fan.Erased):
            await sql.execute("DELETE FROM fans WHERE fan_id = $1", _fan_id(recorded.stream_id))


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))


def _fold(fans: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    fan_id = _fan_id(recorded.stream_id)
    row = fans.get(fan_id)
    if isinstance(event, Fan.Created):
        if row is None:
            fans.put(
                fan_id,
                {
                    "tenant_id": event.tenant,
                    "platform": event.platform,
                    "platform_id": event.platform_id,
                    "name": event.name,
                    "handle": event.handle,
                    "email": event.email,
                    "value_cents": event.value_cents,
                    "tags": list(event.tags),
                    "notes": event.notes,
                    "created_at": event.timestamp,
                    "updated_at": event.timestamp,
                    "version": recorded.version,
                    "conversation_id": None,
                },
            )
    elif row is None:
        return
    elif isinstance(event, Fan.Updated):
        row.update(
            name=event.name,
            handle=event.handle,
            email=event.email,
            value_cents=event.value_cents,
            tags=list(event.tags),
            notes=event.notes,
            updated_at=event.timestamp,
            version=recorded.version,
        )
    elif isinstance(event, Fan.PurchaseRecorded):
        row["value_cents"] = min(row["value_cents"] + event.amount_cents, MAX_VALUE_CENTS)
        row["updated_at"] = event.timestamp
        row["version"] = recorded.version
    elif isinstance(event, Fan.ConversationOpened):
        row["version"] = recorded.version
        row["conversation_id"] = event.conversation_id
    elif isinstance(event, Fan.Deleted | Fan.Erased):
        fans.remove(fan_id)
