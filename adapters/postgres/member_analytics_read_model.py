"""Queries of the member analytics view (projections/analytics_members.py): per member and per
creator account, day by day over a span of UTC days, with totals; and a shift's unanswered
messages.

Figures are summed from the daily rows (one per account, member and day). A day's median
answer time is kept on its row; a member's day over several accounts takes the median of
those (weighted by their answers: exact for one account, close for several). The span's
medians are exact to the histogram: Postgres sums the span's buckets per member and per
account, and only those sums reach Python. Over a whole workspace it sums the histograms kept
per member and per account; over some of its accounts, or for one member, the ones kept per
account and member, filtered."""

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
    # Median time a fan waited for an answer, within 9% (answer-time histogram buckets).
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
_MEMBER_SPAN = """
SELECT member_id, bucket, sum(answers)::bigint AS answers
FROM analytics_member_answer_times_by_member
WHERE member_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
GROUP BY member_id, bucket
"""
_ACCOUNT_SPAN = """
SELECT tenant_id, bucket, sum(answers)::bigint AS answers
FROM analytics_account_answer_times
WHERE tenant_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
GROUP BY tenant_id, bucket
"""
_SPAN_BUCKETS = """
SELECT member_id, tenant_id, bucket, sum(answers)::bigint AS answers
FROM analytics_member_answer_times
WHERE tenant_id = ANY($1::text[]) AND day BETWEEN $2 AND $3
  AND ($4::text IS NULL OR member_id = $4)
GROUP BY GROUPING SETS ((member_id, bucket), (tenant_id, bucket))
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
        whole_workspace: bool = False,
    ) -> tuple[list[MemberFigures], list[AccountFigures]]:
        """Per member (``member_id`` only, if given) and per account of ``accounts``
        (``whole_workspace``: every account of the workspace)."""
        args = (list(accounts), since, until, member_id)
        span: dict[str, dict[str, dict[int, int]]] = {
            "member_id": defaultdict(dict),
            "tenant_id": defaultdict(dict),
        }
        async with self._pool.acquire() as connection:
            daily = await connection.fetch(_DAILY, *args)
            members = sorted({row["member_id"] for row in daily} - {NOBODY, None})
            if whole_workspace and member_id is None:
                rows = [
                    *await connection.fetch(_MEMBER_SPAN, members, since, until),
                    *await connection.fetch(_ACCOUNT_SPAN, list(accounts), since, until),
                ]
                if any(row["member_id"] == NOBODY for row in daily):
                    nobody = (list(accounts), since, until, NOBODY)
                    rows += [
                        row
                        for row in await connection.fetch(_SPAN_BUCKETS, *nobody)
                        if row["member_id"] is not None
                    ]
            else:
                rows = await connection.fetch(_SPAN_BUCKETS, *args)
            for row in rows:
                # A row sums one member's buckets or one account's (GROUPING SETS leaves the
                # other column NULL; the per-member and per-account sums have only theirs).
                by = "member_id" if row.get("member_id") is not None else "tenant_id"
                span[by][row[by]][row["bucket"]] = row["answers"]
            names = {
                row["member_id"]: (row["name"], row["role"])
                for row in await connection.fetch(_NAMES, workspace_id, members)
            }
        by_member = _Totals(daily, span["member_id"], "member_id")
        by_account = _Totals(daily, span["tenant_id"], "tenant_id")
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
    """The days of one kind of key (a member, or an account), summed by Postgres, with the
    span's answer-time histogram of each key."""

    def __init__(
        self, daily: Iterable[asyncpg.Record], span: dict[str, dict[int, int]], by: str
    ) -> None:
        self.days: dict[str, list[Day]] = defaultdict(list)
        self.span = span
        for row in daily:
            key = row[by]
            if key is None:  # the other grouping set's row
                continue
            weighted: dict[int, int] = defaultdict(int)
            for bucket, answers in zip(row["medians"] or (), row["weights"] or (), strict=True):
                weighted[bucket] += answers
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
            yield key, Figures(median_answer_seconds=median(self.span.get(key, {})), **total), days


def median(histogram: dict[int, int]) -> float | None:
    """The median of a histogram of answer-time buckets (the bucket's middle), or None."""
    bucket = median_bucket(histogram)
    return None if bucket is None else round(bucket_seconds(bucket), 1)
