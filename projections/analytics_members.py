"""What agencies look at: per creator account, member and UTC day, the messages a member sent
(PPV among them), the purchases they earned, the fans' replies they drew, the conversations
they wrote in, and how long fans waited for their answers.

Attribution, as the log records it (application/context.py, ``acting_for``):
- a message is its sender's (``Message.Queued.sent_by``; a campaign's, its launcher's);
- a purchase is recorded in the name of the member who sent the PPV: its actor;
- a fan's message is a reply to whoever wrote last in the conversation, and the first
  one-to-one message after it answers it (and every other message of the fan waiting), in the
  name of its sender; a campaign's message draws replies but answers no one.
member_id '' stands for no member (a key of the first release, a process).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from application.context import member_in
from application.ports import RecordedEvent, Sql
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from projections.analytics_common import AppliesOneAsBatch, utc_day
from projections.base import TableRows

NOBODY = ""
# Four buckets a doubling: a bucket's middle is within 9% of any time it holds, and a day of a
# member on an account fills a score of buckets (a finer histogram made the span's median
# read hundreds of thousands of rows over 1M messages: bench/MEASUREMENTS.md, "Agencies").
BUCKETS_PER_DOUBLING = 4
LAST_BUCKET = 32 * BUCKETS_PER_DOUBLING  # 2^32 s: over a century
_HANDLED = frozenset({Message.Queued, Message.Purchased, InboundMessage.Received})
_COUNTS = (
    "messages_sent",
    "ppv_sent",
    "ppv_bought",
    "revenue_cents",
    "replies",
    "conversations_handled",
    "answers",
)


def answer_bucket(seconds: float) -> int:
    """The histogram bucket of an answer that took ``seconds``."""
    if seconds < 1:
        return 0
    return min(int(math.log2(seconds) * BUCKETS_PER_DOUBLING), LAST_BUCKET)


def bucket_seconds(bucket: int) -> float:
    """The middle of a bucket (geometric): at most 9% from any answer time it holds."""
    return float(2 ** ((bucket + 0.5) / BUCKETS_PER_DOUBLING))


@dataclass
class _Batch:
    """What a batch adds, folded in memory in log order."""

    counts: dict[tuple[str, str, date], dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
    )
    handled: set[tuple[str, str, date, int]] = field(default_factory=set)
    answers: dict[tuple[str, str, date, int], int] = field(default_factory=lambda: defaultdict(int))
    inbound: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # This batch's messages of each conversation still waiting for an answer.
    waiting: dict[tuple[str, int], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Conversations with messages stored before this batch still waiting for an answer.
    stored_waiting: set[tuple[str, int]] = field(default_factory=set)
    # Stored messages still waiting, answered in this batch: (tenant, conversation) -> by whom.
    answered_stored: dict[tuple[str, int], tuple[datetime, str]] = field(default_factory=dict)


class MemberAnalyticsProjection(AppliesOneAsBatch):
    name = "analytics_members"
    tables = (
        "analytics_member_daily",
        "analytics_member_conversations",
        "analytics_member_answer_times",
        "analytics_member_conversation_state",
        "analytics_member_inbound",
    )

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        mine = [r for r in batch if type(r.event) in _HANDLED]
        if not mine:
            return
        state = TableRows(
            "analytics_member_conversation_state",
            ("tenant_id", "conversation_id"),
            ("text", "bigint"),
            ("tenant_id", "conversation_id", "last_sender", "unanswered_since"),
        )
        await state.load(
            sql,
            {
                (r.event.tenant, r.event.conversation_id)
                for r in mine
                if not isinstance(r.event, Message.Purchased)
            },
        )
        folded = _Batch()
        folded.stored_waiting = {
            (row["tenant_id"], row["conversation_id"])
            for row in state.present()
            if row["unanswered_since"] is not None
        }
        for recorded in mine:
            _fold(folded, state, recorded)
        await _write(sql, folded, state)


def _fold(folded: _Batch, state: TableRows, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    day = utc_day(event.timestamp)
    if isinstance(event, Message.Purchased):
        member = member_in(recorded.metadata.actor) or NOBODY
        counts = folded.counts[(recorded.metadata.tenant, member, day)]
        counts["ppv_bought"] += 1
        counts["revenue_cents"] += event.amount_cents
        return
    key = (event.tenant, event.conversation_id)
    conversation = state.get(key)
    if conversation is None:
        conversation = {"last_sender": None, "unanswered_since": None}
        state.put(key, conversation)
    if isinstance(event, InboundMessage.Received):
        replied_to = conversation["last_sender"] or NOBODY
        folded.counts[(event.tenant, replied_to, day)]["replies"] += 1
        row = {
            "conversation_id": event.conversation_id,
            "fan_id": event.fan_id,
            "received_at": event.timestamp,
            "answered_at": None,
            "answered_by": None,
        }
        folded.inbound[(event.tenant, message_id_of(recorded.stream_id))] = row
        folded.waiting[key].append(row)
        if conversation["unanswered_since"] is None:
            conversation["unanswered_since"] = event.timestamp
        return
    member = event.sent_by or NOBODY
    counts = folded.counts[(event.tenant, member, day)]
    counts["messages_sent"] += 1
    counts["ppv_sent"] += event.price_cents > 0
    folded.handled.add((event.tenant, member, day, event.conversation_id))
    conversation["last_sender"] = member
    waiting_since = conversation["unanswered_since"]
    if event.campaign_id is None and waiting_since is not None:
        seconds = (event.timestamp - waiting_since).total_seconds()
        folded.answers[(event.tenant, member, day, answer_bucket(max(seconds, 0.0)))] += 1
        counts["answers"] += 1
        conversation["unanswered_since"] = None
        _answer(folded, key, event.timestamp, member)


def median_bucket(histogram: dict[int, int]) -> int | None:
    """The bucket holding the median of a histogram (the lower middle), or None if empty."""
    count = sum(histogram.values())
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if 2 * seen >= count > 0:
            return bucket
    return None


def _answer(folded: _Batch, key: tuple[str, int], at: datetime, member: str) -> None:
    for row in folded.waiting.pop(key, ()):
        row["answered_at"], row["answered_by"] = at, member
    if key in folded.stored_waiting:
        # Messages stored before this batch wait too: the first answer takes them all.
        folded.stored_waiting.discard(key)
        folded.answered_stored[key] = (at, member)


async def _write(sql: Sql, folded: _Batch, state: TableRows) -> None:
    if folded.answered_stored:
        keys = list(folded.answered_stored)
        await sql.execute(
            """
            UPDATE analytics_member_inbound AS i
            SET answered_at = u.at, answered_by = u.member
            FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[])
                AS u(tenant, conversation, at, member)
            WHERE i.tenant_id = u.tenant AND i.conversation_id = u.conversation
              AND i.answered_at IS NULL AND i.received_at <= u.at
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [folded.answered_stored[k][0] for k in keys],
            [folded.answered_stored[k][1] for k in keys],
        )
    if folded.inbound:
        rows = list(folded.inbound.items())
        await sql.execute(
            """
            INSERT INTO analytics_member_inbound
                (tenant_id, message_id, conversation_id, fan_id, received_at, answered_at,
                 answered_by)
            SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[],
                                 $5::timestamptz[], $6::timestamptz[], $7::text[])
            ON CONFLICT (tenant_id, message_id) DO NOTHING
            """,
            [k[0] for k, _ in rows],
            [k[1] for k, _ in rows],
            [r["conversation_id"] for _, r in rows],
            [r["fan_id"] for _, r in rows],
            [r["received_at"] for _, r in rows],
            [r["answered_at"] for _, r in rows],
            [r["answered_by"] for _, r in rows],
        )
    if folded.handled:
        handled = list(folded.handled)
        new = await sql.fetch(
            """
            INSERT INTO analytics_member_conversations (tenant_id, member_id, day, conversation_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::bigint[])
            ON CONFLICT DO NOTHING
            RETURNING tenant_id, member_id, day
            """,
            *(list(column) for column in zip(*handled, strict=True)),
        )
        for row in new:
            folded.counts[(row["tenant_id"], row["member_id"], row["day"])][
                "conversations_handled"
            ] += 1
    if folded.answers:
        answers = [(*key, n) for key, n in folded.answers.items()]
        await sql.execute(
            """
            INSERT INTO analytics_member_answer_times AS a
                (tenant_id, member_id, day, bucket, answers)
            SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::smallint[], $5::int[])
            ON CONFLICT (tenant_id, day, member_id, bucket) DO UPDATE
            SET answers = a.answers + EXCLUDED.answers
            """,
            *(list(column) for column in zip(*answers, strict=True)),
        )
    if folded.counts:
        keys = list(folded.counts)
        columns = ", ".join(_COUNTS)
        added = ", ".join(f"{c} = d.{c} + EXCLUDED.{c}" for c in _COUNTS)
        await sql.execute(
            f"""
            INSERT INTO analytics_member_daily AS d (tenant_id, member_id, day, {columns})
            SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::int[], $5::int[],
                                 $6::int[], $7::bigint[], $8::int[], $9::int[], $10::int[])
            ON CONFLICT (tenant_id, day, member_id) DO UPDATE SET {added}
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            *([folded.counts[k][c] for k in keys] for c in _COUNTS),
        )
    if folded.answers:
        await _store_medians(sql, {key[:3] for key in folded.answers})
    await state.flush(sql)


async def _store_medians(sql: Sql, keys: set[tuple[str, str, date]]) -> None:
    """Each day's median answer time, kept on its daily row from its histogram (the days a
    batch answered in), so that a query reads it rather than the histogram."""
    touched = list(keys)
    rows = await sql.fetch(
        """
        SELECT a.tenant_id, a.member_id, a.day, a.bucket, a.answers
        FROM analytics_member_answer_times a
        JOIN unnest($1::text[], $2::text[], $3::date[]) AS k(t, m, d)
          ON a.tenant_id = k.t AND a.day = k.d AND a.member_id = k.m
        """,
        *(list(column) for column in zip(*touched, strict=True)),
    )
    histograms: dict[tuple[str, str, date], dict[int, int]] = defaultdict(dict)
    for row in rows:
        histograms[(row["tenant_id"], row["member_id"], row["day"])][row["bucket"]] = row["answers"]
    medians = [(*key, median_bucket(histograms[key])) for key in touched]
    await sql.execute(
        """
        UPDATE analytics_member_daily AS d SET median_answer_bucket = u.b
        FROM unnest($1::text[], $2::text[], $3::date[], $4::smallint[]) AS u(t, m, dd, b)
        WHERE d.tenant_id = u.t AND d.day = u.dd AND d.member_id = u.m
        """,
        *(list(column) for column in zip(*medians, strict=True)),
    )
