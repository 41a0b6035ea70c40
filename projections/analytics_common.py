"""What the analytics projections share: UTC days and months, one event at a time as a batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Protocol

from application.ports import RecordedEvent, Sql
from domain.fan import Fan


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def paid_at(event: Fan.PurchaseRecorded | Fan.TransactionImported) -> datetime:
    """When the money changed hands: an imported transaction's own time, not its import's."""
    if isinstance(event, Fan.TransactionImported):
        return event.occurred_at
    return event.timestamp


def utc_month(moment: datetime) -> date:
    return utc_day(moment).replace(day=1)


class BatchOnly(Protocol):
    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None: ...


class AppliesOneAsBatch:
    """``apply`` for projections written batch-first: one event is a batch of one."""

    async def apply(self: BatchOnly, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])
