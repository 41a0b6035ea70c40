"""The sequences read model: each sequence with its per-step metrics, and the runs under way
with when their next step falls due (the automation worker's timers).

A statement per event of a sequence or a run (they are few next to messages); the message
events it reads (a reply, a purchase) take one only when they concern a run.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import msgspec

from application.ports import RecordedEvent, Sql
from domain.enrolment import Enrolment
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from domain.sequence import Sequence

_SEQUENCE_EVENTS = frozenset(
    {Sequence.Created, Sequence.Updated, Sequence.Paused, Sequence.Resumed, Sequence.Archived}
)
_STATUS = {Sequence.Paused: "paused", Sequence.Resumed: "active", Sequence.Archived: "archived"}
_ENROLMENT_EVENTS = frozenset(
    {Enrolment.Enrolled, Enrolment.StepSent, Enrolment.Exited, Enrolment.Completed}
)
_HANDLED = _SEQUENCE_EVENTS | _ENROLMENT_EVENTS | {InboundMessage.Received, Message.Purchased}

_COUNT = """
INSERT INTO sequence_step_metrics (sequence_id, step, {column}) VALUES ($1, $2, $3)
ON CONFLICT (sequence_id, step) DO UPDATE
SET {column} = sequence_step_metrics.{column} + EXCLUDED.{column}
"""


class SequencesProjection:
    name = "sequences"
    tables = ("sequences", "sequence_step_metrics", "sequence_enrolments", "sequence_messages")

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Seq[RecordedEvent]) -> None:
        """In log order. Replies and purchases are most of what a busy log holds and rarely
        concern a run: one query each per batch finds those that may (fans with a run under
        way, messages a step sent), and only those take a statement of their own."""
        events = [r for r in batch if type(r.event) in _HANDLED]
        if not events:
            return
        fans = await _fans_in_runs(sql, events)
        sent = await _step_messages(sql, events)
        for recorded in events:
            event: Any = recorded.event
            kind = type(event)
            tenant = recorded.metadata.tenant
            if kind in _SEQUENCE_EVENTS:
                await _sequence(sql, recorded)
            elif kind is Enrolment.Enrolled:
                fans.add((tenant, event.fan_id))
                await _enrolled(sql, recorded)
            elif kind is Enrolment.StepSent:
                sent.add((event.message_id, tenant))
                await _step_sent(sql, recorded)
            elif kind in (Enrolment.Exited, Enrolment.Completed):
                await _ended(sql, recorded)
            elif kind is InboundMessage.Received:
                if (tenant, event.fan_id) in fans:
                    await _replied(sql, tenant, event.fan_id)
            elif (message_id_of(recorded.stream_id), tenant) in sent:
                await _purchased(sql, recorded)


async def _fans_in_runs(sql: Sql, events: list[RecordedEvent]) -> set[tuple[str, int]]:
    asked = {
        (r.metadata.tenant, r.event.fan_id)  # type: ignore[attr-defined]
        for r in events
        if type(r.event) is InboundMessage.Received
    }
    if not asked:
        return set()
    tenants, fan_ids = zip(*asked, strict=True)
    rows = await sql.fetch(
        "SELECT DISTINCT e.tenant_id, e.fan_id FROM sequence_enrolments e"
        " JOIN unnest($1::text[], $2::bigint[]) AS a(t, f) ON e.tenant_id = a.t AND e.fan_id = a.f",
        list(tenants),
        list(fan_ids),
    )
    return {(row["tenant_id"], row["fan_id"]) for row in rows}


async def _step_messages(sql: Sql, events: list[RecordedEvent]) -> set[tuple[str, str]]:
    asked = {
        (message_id_of(r.stream_id), r.metadata.tenant)
        for r in events
        if type(r.event) is Message.Purchased
    }
    if not asked:
        return set()
    message_ids, tenants = zip(*asked, strict=True)
    rows = await sql.fetch(
        "SELECT m.message_id::text AS message_id, m.tenant_id FROM sequence_messages m"
        " JOIN unnest($1::uuid[], $2::text[]) AS a(m, t) ON m.message_id = a.m"
        " AND m.tenant_id = a.t",
        list(message_ids),
        list(tenants),
    )
    return {(row["message_id"], row["tenant_id"]) for row in rows}


async def _sequence(sql: Sql, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    sequence_id = int(recorded.stream_id.removeprefix("sequence-"))
    if isinstance(event, Sequence.Created):
        await sql.execute(
            """
            INSERT INTO sequences (sequence_id, tenant_id, name, status, trigger, steps,
                exit_rules, reentry, time_zone, created_at, updated_at, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)
            ON CONFLICT (sequence_id) DO NOTHING
            """,
            sequence_id,
            event.tenant,
            event.name,
            event.status,
            msgspec.to_builtins(event.trigger),
            msgspec.to_builtins(event.steps),
            msgspec.to_builtins(event.exit_rules),
            event.reentry,
            event.time_zone,
            event.timestamp,
            recorded.version,
        )
    elif isinstance(event, Sequence.Updated):
        await sql.execute(
            """
            UPDATE sequences SET name = $2, steps = $3, exit_rules = $4, reentry = $5,
                time_zone = $6, updated_at = $7, version = $8
            WHERE sequence_id = $1
            """,
            sequence_id,
            event.name,
            msgspec.to_builtins(event.steps),
            msgspec.to_builtins(event.exit_rules),
            event.reentry,
            event.time_zone,
            event.timestamp,
            recorded.version,
        )
    else:
        await sql.execute(
            "UPDATE sequences SET status = $2, updated_at = $3, version = $4"
            " WHERE sequence_id = $1",
            sequence_id,
            _STATUS[type(event)],
            event.timestamp,
            recorded.version,
        )


async def _enrolled(sql: Sql, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    inserted = await sql.execute(
        """
        INSERT INTO sequence_enrolments (stream_id, tenant_id, sequence_id, fan_id, next_step,
            due_at, version)
        VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (stream_id) DO NOTHING
        """,
        recorded.stream_id,
        event.tenant,
        event.sequence_id,
        event.fan_id,
        event.due_at,
        recorded.version,
    )
    if inserted.endswith(" 1"):
        await sql.execute(
            "UPDATE sequences SET entered = entered + 1 WHERE sequence_id = $1", event.sequence_id
        )
        await _count(sql, "entered", event.sequence_id, 0)


async def _step_sent(sql: Sql, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    row = await sql.fetchrow(
        """
        UPDATE sequence_enrolments
        SET next_step = $2 + 1, due_at = $3, last_sent_step = $2, version = $4
        WHERE stream_id = $1 RETURNING sequence_id
        """,
        recorded.stream_id,
        event.step,
        event.next_due,
        recorded.version,
    )
    if row is None:
        return
    sequence_id = row["sequence_id"]
    await _count(sql, "sent", sequence_id, event.step)
    if event.next_due is not None:
        await _count(sql, "entered", sequence_id, event.step + 1)
    await sql.execute(
        "INSERT INTO sequence_messages (message_id, tenant_id, sequence_id, step)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        event.message_id,
        recorded.metadata.tenant,
        sequence_id,
        event.step,
    )


async def _ended(sql: Sql, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    row = await sql.fetchrow(
        "DELETE FROM sequence_enrolments WHERE stream_id = $1 RETURNING sequence_id, next_step",
        recorded.stream_id,
    )
    if row is None:
        return
    if isinstance(event, Enrolment.Completed):
        await sql.execute(
            "UPDATE sequences SET completed = completed + 1 WHERE sequence_id = $1",
            row["sequence_id"],
        )
        return
    await sql.execute(
        """
        INSERT INTO sequence_step_metrics (sequence_id, step, exited)
        VALUES ($1, $2, jsonb_build_object($3::text, 1))
        ON CONFLICT (sequence_id, step) DO UPDATE
        SET exited = sequence_step_metrics.exited || jsonb_build_object(
            $3::text, coalesce((sequence_step_metrics.exited ->> $3)::int, 0) + 1)
        """,
        row["sequence_id"],
        row["next_step"],
        event.reason,
    )


async def _replied(sql: Sql, tenant: str, fan_id: int) -> None:
    """A reply counts once for the last step each of the fan's runs has sent."""
    rows = await sql.fetch(
        """
        UPDATE sequence_enrolments SET replied_step = last_sent_step
        WHERE tenant_id = $1 AND fan_id = $2 AND last_sent_step IS NOT NULL
          AND replied_step IS DISTINCT FROM last_sent_step
        RETURNING sequence_id, last_sent_step
        """,
        tenant,
        fan_id,
    )
    for row in rows:
        await _count(sql, "replied", row["sequence_id"], row["last_sent_step"])


async def _purchased(sql: Sql, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    row = await sql.fetchrow(
        "SELECT sequence_id, step FROM sequence_messages WHERE message_id = $1 AND tenant_id = $2",
        message_id_of(recorded.stream_id),
        recorded.metadata.tenant,
    )
    if row is None:
        return
    await _count(sql, "purchased", row["sequence_id"], row["step"])
    await _count(sql, "revenue_cents", row["sequence_id"], row["step"], event.amount_cents)


async def _count(sql: Sql, column: str, sequence_id: int, step: int, by: int = 1) -> None:
    await sql.execute(_COUNT.format(column=column), sequence_id, step, by)
