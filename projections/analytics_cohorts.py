"""Fans by cohort month, with what they spent and when they were last active.

A fan's cohort is the month they subscribed when that day is known (``subscribed_at``, from an
import or the API, kept up to date by Fan.Updated, which carries every editable field), else
the UTC month fancrm first saw them (Fan.Created). Imported fans were first seen on the day of
the import, which says nothing about when they joined.

Active means the fan did something: wrote a message (InboundMessageReceived) or bought one
(FanPurchaseRecorded, or a transaction imported: FanTransactionImported, at its own time);
being created counts as the first activity. Messages the creator sends
are not the fan's activity. Churn (no activity in 30 days) depends on "as of when", so it is
not stored: the query counts fans whose last activity is older than 30 days before the time
it is asked about (now by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from projections.analytics_common import AppliesOneAsBatch, paid_at, utc_month


class FanCohortsProjection(AppliesOneAsBatch):
    name = "analytics_cohorts"
    tables = ("analytics_fan_activity",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        created: dict[int, tuple[str, datetime, date | None]] = {}
        # fan -> the subscription day of its latest Fan.Updated in the batch (None: unknown)
        subscribed: dict[int, date | None] = {}
        # fan -> [spend, purchases, messages, latest activity]
        activity: dict[int, list[object]] = {}
        for recorded in batch:
            event = recorded.event
            if isinstance(event, Fan.Created):
                created.setdefault(
                    event.fan_id, (event.tenant, event.timestamp, event.subscribed_at)
                )
            elif isinstance(event, Fan.Updated):
                subscribed[int(recorded.stream_id.removeprefix("fan-"))] = event.subscribed_at
            elif isinstance(event, Fan.PurchaseRecorded | Fan.TransactionImported):
                fan_id = int(recorded.stream_id.removeprefix("fan-"))
                _add(activity, fan_id, event.amount_cents, 1, 0, paid_at(event))
            elif isinstance(event, InboundMessage.Received):
                _add(activity, event.fan_id, 0, 0, 1, event.timestamp)
        if created:
            await sql.execute(
                """
                INSERT INTO analytics_fan_activity
                    (fan_id, tenant_id, cohort_month, first_seen_at, last_active_at,
                     subscribed_at)
                SELECT f, t, m, s, s, d
                FROM unnest($1::bigint[], $2::text[], $3::date[], $4::timestamptz[], $5::date[])
                     AS u(f, t, m, s, d)
                ON CONFLICT (fan_id) DO NOTHING
                """,
                list(created),
                [tenant for tenant, _, _ in created.values()],
                [cohort_month(at, day) for _, at, day in created.values()],
                [at for _, at, _ in created.values()],
                [day for _, _, day in created.values()],
            )
        if subscribed:
            # After the inserts, so a fan created and updated in one batch ends as updated.
            # The first-seen month is recomputed in SQL: the fan may be from an earlier batch.
            await sql.execute(
                """
                UPDATE analytics_fan_activity a
                SET subscribed_at = u.d,
                    cohort_month = coalesce(
                        date_trunc('month', u.d::timestamp),
                        date_trunc('month', a.first_seen_at AT TIME ZONE 'UTC')
                    )::date
                FROM unnest($1::bigint[], $2::date[]) AS u(fan_id, d)
                WHERE a.fan_id = u.fan_id
                """,
                list(subscribed),
                list(subscribed.values()),
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


def cohort_month(first_seen: datetime, subscribed_at: date | None) -> date:
    """The month a fan belongs to: of the subscription day if known, else UTC first-seen."""
    if subscribed_at is not None:
        return subscribed_at.replace(day=1)
    return utc_month(first_seen)


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
