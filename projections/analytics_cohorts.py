"""Fans by first-seen month (UTC), with what they spent and when they were last active.

Active means the fan did something: wrote a message (InboundMessageReceived) or bought one
(FanPurchaseRecorded); being created counts as the first activity. Messages the creator sends
are not the fan's activity. Churn (no activity in 30 days) depends on "as of when", so it is
not stored: the query counts fans whose last activity is older than 30 days before the time
it is asked about (now by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from projections.analytics_common import AppliesOneAsBatch, utc_month


class FanCohortsProjection(AppliesOneAsBatch):
    name = "analytics_cohorts"
    tables = ("analytics_fan_activity",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        created: dict[int, tuple[str, datetime]] = {}
        # fan -> [spend, purchases, messages, latest activity]
        activity: dict[int, list[object]] = {}
        for recorded in batch:
            event = recorded.event
            if isinstance(event, Fan.Created):
                created.setdefault(event.fan_id, (event.tenant, event.timestamp))
            elif isinstance(event, Fan.PurchaseRecorded):
                fan_id = int(recorded.stream_id.removeprefix("fan-"))
                _add(activity, fan_id, event.amount_cents, 1, 0, event.timestamp)
            elif isinstance(event, InboundMessage.Received):
                _add(activity, event.fan_id, 0, 0, 1, event.timestamp)
        if created:
            await sql.execute(
                """
                INSERT INTO analytics_fan_activity
                    (fan_id, tenant_id, cohort_month, first_seen_at, last_active_at)
                SELECT f, t, m, s, s
                FROM unnest($1::bigint[], $2::text[], $3::date[], $4::timestamptz[])
                     AS u(f, t, m, s)
                ON CONFLICT (fan_id) DO NOTHING
                """,
                list(created),
                [tenant for tenant, _ in created.values()],
                [utc_month(at) for _, at in created.values()],
                [at for _, at in created.values()],
            )
        if activity:
            # After the inserts: sums and greatest() commute, so the batch's activity folds
            # into one update per fan, whatever its order in the batch.
            await sql.execute(
                """
                UPDATE analytics_fan_activity a
                SET spend_cents = a.spend_cents + u.spend, purchases = a.purchases + u.bought,
                    messages = a.messages + u.wrote,
                    last_active_at = greatest(a.last_active_at, u.at)
                FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::int[], $5::timestamptz[])
                     AS u(fan_id, spend, bought, wrote, at)
                WHERE a.fan_id = u.fan_id
                """,
                list(activity),
                *([row[i] for row in activity.values()] for i in range(4)),
            )


def _add(
    activity: dict[int, list[object]],
    fan_id: int,
    spend: int,
    bought: int,
    wrote: int,
    at: datetime,
) -> None:
    row = activity.get(fan_id)
    if row is None:
        activity[fan_id] = [spend, bought, wrote, at]
        return
    row[0] += spend  # type: ignore[operator]
    row[1] += bought  # type: ignore[operator]
    row[2] += wrote  # type: ignore[operator]
    row[3] = max(row[3], at)  # type: ignore[type-var]
