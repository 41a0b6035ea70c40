"""Queries of the analytics read models: revenue per fan per day, cohorts, campaign revenue.

Each is scoped to one tenant. Day lists are keyset-paginated, newest day first.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from domain.errors import InvalidValue

# A fan is churned when neither a message from them nor a purchase is this recent.
CHURN_AFTER = timedelta(days=30)
_BIGINT = range(-(2**63), 2**63)


class FanRevenueDay(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    fan_id: int
    day: date
    revenue_cents: int
    purchases: int


class CampaignRevenueDay(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    campaign_id: int
    day: date
    messages_queued: int
    revenue_cents: int
    purchases: int


# How a fan is placed in a cohort, first that applies: the month of the day they subscribed
# (known from an import or the API), else the UTC month fancrm first saw them.
COHORT_BY = ("subscribedAt", "firstSeen")


class Cohort(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    month: str  # "2024-03": the month the fans subscribed in, or were first seen in
    fans: int
    # Of ``fans``: placed by their subscription day, and by first-seen (subscription unknown).
    fans_by_subscribed_at: int
    fans_by_first_seen: int
    spend_cents: int
    purchases: int
    active_fans: int
    churned_fans: int
    churn_rate: float


class Page(msgspec.Struct, frozen=True):
    items: list[Any]
    next_cursor: str | None


class AnalyticsReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def fan_revenue(
        self,
        tenant: str,
        *,
        since: date | None,
        until: date | None,
        fan_id: int | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        if fan_id is not None and fan_id not in _BIGINT:
            return Page([], None)
        rows = await self._days(
            "analytics_fan_revenue_daily",
            "fan_id",
            "revenue_cents, purchases",
            tenant,
            since,
            until,
            fan_id,
            limit,
            cursor,
        )
        return _page(rows, limit, "fan_id", lambda row: FanRevenueDay(**row))

    async def campaign_revenue(
        self,
        tenant: str,
        *,
        since: date | None,
        until: date | None,
        campaign_id: int | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        if campaign_id is not None and campaign_id not in _BIGINT:
            return Page([], None)
        rows = await self._days(
            "analytics_campaign_revenue_daily",
            "campaign_id",
            "messages_queued, revenue_cents, purchases",
            tenant,
            since,
            until,
            campaign_id,
            limit,
            cursor,
        )
        return _page(rows, limit, "campaign_id", lambda row: CampaignRevenueDay(**row))

    async def cohorts(
        self, tenant: str, *, now: datetime, since: date | None, until: date | None
    ) -> list[Cohort]:
        rows = await self._pool.fetch(
            """
            SELECT to_char(cohort_month, 'YYYY-MM') AS month, count(*) AS fans,
                   sum(spend_cents)::bigint AS spend_cents, sum(purchases)::bigint AS purchases,
                   count(*) FILTER (WHERE last_active_at < $2) AS churned_fans,
                   count(*) FILTER (WHERE subscribed_at IS NOT NULL) AS by_subscribed_at
            FROM analytics_fan_activity
            WHERE tenant_id = $1
              AND ($3::date IS NULL OR cohort_month >= date_trunc('month', $3::date))
              AND ($4::date IS NULL OR cohort_month <= $4::date)
            GROUP BY cohort_month ORDER BY cohort_month
            """,
            tenant,
            now - CHURN_AFTER,
            since,
            until,
        )
        return [
            Cohort(
                month=row["month"],
                fans=row["fans"],
                fans_by_subscribed_at=row["by_subscribed_at"],
                fans_by_first_seen=row["fans"] - row["by_subscribed_at"],
                spend_cents=row["spend_cents"],
                purchases=row["purchases"],
                active_fans=row["fans"] - row["churned_fans"],
                churned_fans=row["churned_fans"],
                churn_rate=round(row["churned_fans"] / row["fans"], 4),
            )
            for row in rows
        ]

    async def _days(
        self,
        table: str,
        key: str,
        columns: str,
        tenant: str,
        since: date | None,
        until: date | None,
        key_value: int | None,
        limit: int,
        cursor: str | None,
    ) -> list[dict[str, Any]]:
        after_day, after_key = _cursor(cursor) if cursor else (None, None)
        rows = await self._pool.fetch(
            f"""
            SELECT {key}, day, {columns} FROM {table}
            WHERE tenant_id = $1
              AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day <= $3)
              AND ($4::bigint IS NULL OR {key} = $4)
              AND ($5::date IS NULL OR (day, {key}) < ($5, $6::bigint))
            ORDER BY day DESC, {key} DESC
            LIMIT $7
            """,
            tenant,
            since,
            until,
            key_value,
            after_day,
            after_key,
            limit + 1,
        )
        return [dict(row) for row in rows]


def _page(rows: list[dict[str, Any]], limit: int, key: str, make: Any) -> Page:
    items = [make(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["day"].isoformat(), last[key])
    return Page(items, next_cursor)


def _cursor(cursor: str) -> tuple[date, int]:
    day, key = decode_cursor(cursor, tuple[str, int])
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise InvalidValue("cursor", "is not a cursor this API returned") from None
    return parsed, key
