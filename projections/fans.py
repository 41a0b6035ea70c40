"""The fans read model: one row per live fan, for listing, search and sorting by value."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.fan import MAX_VALUE_CENTS, Fan
from projections.base import TableRows

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
    "subscribed_at",
    "created_at",
    "updated_at",
    "version",
    "identity_version",
    "conversation_id",
]

_FOLDED = frozenset(
    {
        Fan.Created,
        Fan.Updated,
        Fan.PurchaseRecorded,
        Fan.TransactionImported,
        Fan.ConversationOpened,
        Fan.LinkedToPerson,
        Fan.UnlinkedFromPerson,
        Fan.Deleted,
        Fan.Erased,
    }
)


class FansProjection:
    name = "fans"
    tables = ("fans",)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Folded over the rows in memory (see projections.base)."""
        events = [r for r in batch if type(r.event) in _FOLDED]
        if not events:
            return
        fans = TableRows("fans", "fan_id", "bigint", _COLUMNS)
        await fans.load(sql, {_fan_id(r.stream_id) for r in events})
        for recorded in events:
            _fold(fans, recorded)
        await fans.flush(sql)


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))


def _fold(fans: TableRows, recorded: RecordedEvent) -> None:
    event = recorded.event
    kind = type(event)
    fan_id = _fan_id(recorded.stream_id)
    row = fans.get(fan_id)
    if kind is Fan.Created:
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
                    "subscribed_at": event.subscribed_at,
                    "created_at": event.timestamp,
                    "updated_at": event.timestamp,
                    "version": recorded.version,
                    "identity_version": recorded.version,
                    "conversation_id": None,
                },
            )
    elif row is None:
        return
    elif kind is Fan.Updated:
        if event.handle != row["handle"]:
            # The import index matches fans by handle: a new one must be indexed.
            row["identity_version"] = recorded.version
        row.update(
            name=event.name,
            handle=event.handle,
            email=event.email,
            value_cents=event.value_cents,
            tags=list(event.tags),
            notes=event.notes,
            subscribed_at=event.subscribed_at,
            updated_at=event.timestamp,
            version=recorded.version,
        )
    elif kind is Fan.PurchaseRecorded or kind is Fan.TransactionImported:
        row["value_cents"] = min(row["value_cents"] + event.amount_cents, MAX_VALUE_CENTS)
        row["updated_at"] = event.timestamp
        row["version"] = recorded.version
    elif kind is Fan.ConversationOpened:
        # The version changes too: ETags must match the stream, and the campaign fan-out
        # reads (version, conversation) together from this row.
        row["version"] = recorded.version
        row["conversation_id"] = event.conversation_id
    elif kind is Fan.LinkedToPerson or kind is Fan.UnlinkedFromPerson:
        # Only the version: ETags (If-Match) must match the stream, which the link moved.
        row["version"] = recorded.version
    elif kind is Fan.Deleted or kind is Fan.Erased:
        fans.remove(fan_id)
