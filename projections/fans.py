"""The fans read model: one row per live fan, for listing, search and sorting by value."""

from __future__ import annotations

from application.ports import RecordedEvent, Sql
from domain.fan import MAX_VALUE_CENTS, Fan

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


class FansProjection:
    name = "fans"
    tables = ("fans",)

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
            # No visible field changes, but the version does: ETags must match the stream.
            await sql.execute(
                "UPDATE fans SET version = $2 WHERE fan_id = $1",
                _fan_id(recorded.stream_id),
                recorded.version,
            )
        elif isinstance(event, Fan.Deleted | Fan.Erased):
            await sql.execute("DELETE FROM fans WHERE fan_id = $1", _fan_id(recorded.stream_id))


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
