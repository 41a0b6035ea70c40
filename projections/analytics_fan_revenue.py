"""Revenue per fan per day (UTC), from FanPurchaseRecorded.

A PPV purchase is recorded twice in the log, in one transaction: MessagePurchased on the
message and FanPurchaseRecorded on the fan. Only the fan's event is counted here, so a
purchase is never counted twice. An imported transaction (FanTransactionImported) counts on the
day it happened, not the day it was imported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from projections.analytics_common import AppliesOneAsBatch, paid_at, utc_day


class FanRevenueProjection(AppliesOneAsBatch):
    name = "analytics_fan_revenue"
    tables = ("analytics_fan_revenue_daily",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        totals: dict[tuple[int, object], list[object]] = defaultdict(lambda: ["", 0, 0])
        for recorded in batch:
            event = recorded.event
            if isinstance(event, Fan.PurchaseRecorded | Fan.TransactionImported):
                key = (int(recorded.stream_id.removeprefix("fan-")), utc_day(paid_at(event)))
                total = totals[key]
                total[0] = recorded.metadata.tenant
                total[1] += event.amount_cents  # type: ignore[operator]
                total[2] += 1  # type: ignore[operator]
        if not totals:
            return
        # Sums commute, so a batch's purchases fold into one row per (fan, day).
        await sql.execute(
            """
            INSERT INTO analytics_fan_revenue_daily AS r
                (fan_id, day, tenant_id, revenue_cents, purchases)
            SELECT * FROM unnest($1::bigint[], $2::date[], $3::text[], $4::bigint[], $5::int[])
            ON CONFLICT (fan_id, day) DO UPDATE
            SET revenue_cents = r.revenue_cents + EXCLUDED.revenue_cents,
                purchases = r.purchases + EXCLUDED.purchases
            """,
            [fan for fan, _ in totals],
            [day for _, day in totals],
            [total[0] for total in totals.values()],
            [total[1] for total in totals.values()],
            [total[2] for total in totals.values()],
        )
