"""Queries of the member analytics view (projections/analytics_members.py): per member and per
creator account, day by day over a span of UTC days, with totals; and a shift's unanswered
messages.

Figures are summed by Postgres from the daily rows (one per account, member and day), one row
per member-day and per account-day. A day's median answer time is kept on its row by the
projection, from that day's histogram; where several rows make one figure (a member's day over
several accounts, a span's total), the median is the answers-weighted median of theirs: exact
for one row, close otherwise, and read without a histogram (the span's histograms made this
route cost 200 ms over 1M messages: bench/MEASUREMENTS.md, "Agencies")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime

import asyncpg
import msgspec

from projections.analytics_members import NOBODY, bucket_seconds, median_bucket

COUNTS = (
    "messages_sent",
    "ppv_sent",
    "ppv_bought",
    "revenue_cents",
    "replies",
    "conversations_handled",
    "answers",
)


class Figures(msgspec.Struct, kw_only=True, rename="camel"):
    messages_sent: int = 0
    ppv_sent: int = 0
    ppv_bought: int = 0
    revenue_cents: int = 0
    # Fans' messages that answered this member's (or account's) last message.
    replies: int = 0
    # Summed over days: a conversation handled on two days counts on each.
    conversations_handled: int = 0
    answers: int = 0  # fans' waits ended by an answer
    # Median time a fan waited for an answer: a day's, within 9% (its histogram's bucket); over
    # several rows, the answers-weighted median of theirs.
    median_answer_seconds: float | None = None


class Day(Figures, kw_only=True, rename="camel"):
    date: date


class MemberFigures(msgspec.Struct, kw_only=True, rename="camel"):
    member_id: str | None  # None: no member (keys of the first release, processes)
    name: str | None
    role: str | None
    totals: Figures
    days: list[Day]


class AccountFigures(msgspec.Struct, kw_only=True, rename="camel"):
    account_id: str
    totals: Figures
    days: list[Day]


_ACCOUNTS = """
SELECT $1::text AS account_id
UNION SELECT account_id FROM workspace_accounts WHERE workspace_id = $1
"""
# One row per member and day and per account and day (GROUPING SETS leaves the other column
# NULL), summed in Postgres; with each day's medians and their answers, to weigh them.
_DAILY = """
SELECT member_id, tenant_id, day,
       sum(messages_sent)::bigint AS messages_sent, sum(ppv_sent)::bigint AS ppv_sent,
       sum(ppv_bought)::bigint AS ppv_bought, sum(revenue_cents)::bigint AS revenue_cents,
       sum(replies)::bigint AS replies,
       sum(conversations_handled)::bigint AS conversations_handled,
       sum(answers)::bigint AS answers,
       array_agg(median_answer_bucket) FILTER (WHERE median_answer_bucket IS NOT NULL)
           AS medians,
       array_agg(answers) FILTER (WHERE median_answer_bucket IS NOT NULL) AS weights
FROM analytics_member_daily
WHERE tenant_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
  AND ($4::text IS NULL OR member_id = $4)
GROUP BY GROUPING SETS ((member_id, day), (tenant_id, day))
"""
_NAMES = """
SELECT member_id, name, role FROM workspace_members
WHERE workspace_id = $1 AND member_id = ANY($2::text[])
"""
_UNANSWERED = """
SELECT tenant_id, message_id, conversation_id, fan_id, received_at, answered_at, answered_by
FROM analytics_member_inbound
WHERE tenant_id = ANY($1::text[]) AND received_at >= $2 AND received_at < $3
  AND (answered_at IS NULL OR answered_at >= $3)
ORDER BY received_at, message_id
LIMIT $4
"""


class UnansweredMessage(msgspec.Struct, kw_only=True, rename="camel"):
    account_id: str
    message_id: str
    conversation_id: int
    fan_id: int
    received_at: datetime
    answered_at: datetime | None  # after the shift ended, or None: still waiting
    answered_by: str | None


class MemberAnalyticsReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def workspace_accounts(self, workspace_id: str) -> list[str]:
        rows = await self._pool.fetch(_ACCOUNTS, workspace_id)
        return sorted(row["account_id"] for row in rows)

    async def figures(
        self,
        workspace_id: str,
        accounts: Sequence[str],
        since: date,
        until: date,
        *,
        member_id: str | None = None,
    ) -> tuple[list[MemberFigures], list[AccountFigures]]:
        """Per member (``member_id`` only, if given) and per account of ``accounts``."""
        args = (list(accounts), since, until, member_id)
        async with self._pool.acquire() as connection:
            daily = await connection.fetch(_DAILY, *args)
            members = sorted({row["member_id"] for row in daily} - {NOBODY, None})
            names = {
                row["member_id"]: (row["name"], row["role"])
                for row in await connection.fetch(_NAMES, workspace_id, members)
            }
        by_member = _Totals(daily, "member_id")
        by_account = _Totals(daily, "tenant_id")
        return (
            [
                MemberFigures(
                    member_id=key or None,
                    name=names.get(key, (None, None))[0],
                    role=names.get(key, (None, None))[1],
                    totals=totals,
                    days=days,
                )
                for key, totals, days in by_member.each()
            ],
            [
                AccountFigures(account_id=key, totals=totals, days=days)
                for key, totals, days in by_account.each()
            ],
        )

    async def unanswered(
        self, accounts: Sequence[str], starts_at: datetime, ends_at: datetime, limit: int
    ) -> list[UnansweredMessage]:
        """Fans' messages received from ``starts_at`` to ``ends_at`` not answered by then."""
        rows = await self._pool.fetch(_UNANSWERED, list(accounts), starts_at, ends_at, limit)
        return [
            UnansweredMessage(
                account_id=row["tenant_id"],
                message_id=str(row["message_id"]),
                conversation_id=row["conversation_id"],
                fan_id=row["fan_id"],
                received_at=row["received_at"],
                answered_at=row["answered_at"],
                answered_by=row["answered_by"] or None,
            )
            for row in rows
        ]


class _Totals:
    """The days of one kind of key (a member, or an account), summed by Postgres."""

    def __init__(self, daily: Iterable[asyncpg.Record], by: str) -> None:
        self.days: dict[str, list[Day]] = defaultdict(list)
        # Per key: each of its rows' median bucket, and the answers it weighs.
        self.medians: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for row in daily:
            key = row[by]
            if key is None:  # the other grouping set's row
                continue
            weighted: dict[int, int] = defaultdict(int)
            for bucket, answers in zip(row["medians"] or (), row["weights"] or (), strict=True):
                weighted[bucket] += answers
                self.medians[key][bucket] += answers
            self.days[key].append(
                Day(
                    date=row["day"],
                    median_answer_seconds=median(weighted),
                    **{column: row[column] for column in COUNTS},
                )
            )

    def each(self) -> Iterable[tuple[str, Figures, list[Day]]]:
        for key in sorted(self.days):
            days = sorted(self.days[key], key=lambda day: day.date)
            total = {column: sum(getattr(day, column) for day in days) for column in COUNTS}
            yield key, Figures(median_answer_seconds=median(self.medians[key]), **total), days


def median(histogram: dict[int, int]) -> float | None:
    """The median of answer-time buckets weighted by their answers (the bucket's middle), or
    None if there are none."""
    bucket = median_bucket(histogram)
    return None if bucket is None else round(bucket_seconds(bucket), 1)
