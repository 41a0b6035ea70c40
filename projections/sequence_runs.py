"""How a batch of run events, and the replies and purchases that concern runs, change the
sequences view: folded in memory (see projections.base), then written once per batch. The runs
under way are rows (TableRows); counts per step and per sequence are added up and added to the
stored ones in one statement each; the messages steps sent are inserted in one.

A reply counts once for the last step each of the fan's runs has sent; a purchase of a step's
message counts on that step; a run that ends early counts on the step it was waiting for. A
step with an A/B test counts the same per variant too (sent, replied, purchased, revenue).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from application.ports import RecordedEvent, Sql
from domain.enrolment import Enrolment
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from projections.base import TableRows

RUN_EVENTS = frozenset(
    {Enrolment.Enrolled, Enrolment.StepSent, Enrolment.Exited, Enrolment.Completed}
)
_COLUMNS = (
    *("stream_id", "tenant_id", "sequence_id", "fan_id", "next_step", "due_at"),
    *("last_sent_step", "last_sent_variant", "replied_step", "version"),
)
_COUNTS = ("entered", "sent", "replied", "purchased", "revenue_cents")

_ADD_STEP_COUNTS = """
INSERT INTO sequence_step_metrics AS m
    (sequence_id, step, entered, sent, replied, purchased, revenue_cents, exited)
SELECT s, st, en, se, re, pu, rv, ex::jsonb
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::bigint[],
            $8::text[]) AS u(s, st, en, se, re, pu, rv, ex)
ON CONFLICT (sequence_id, step) DO UPDATE SET
    entered = m.entered + EXCLUDED.entered,
    sent = m.sent + EXCLUDED.sent,
    replied = m.replied + EXCLUDED.replied,
    purchased = m.purchased + EXCLUDED.purchased,
    revenue_cents = m.revenue_cents + EXCLUDED.revenue_cents,
    exited = (
        SELECT coalesce(jsonb_object_agg(
            k, coalesce((m.exited ->> k)::int, 0) + coalesce((EXCLUDED.exited ->> k)::int, 0)
        ), '{}'::jsonb)
        FROM jsonb_object_keys(m.exited || EXCLUDED.exited) AS k
    )
"""
_VARIANT_COUNTS = ("sent", "replied", "purchased", "revenue_cents")
_ADD_VARIANT_COUNTS = """
INSERT INTO sequence_step_variants AS v
    (sequence_id, step, variant, sent, replied, purchased, revenue_cents)
SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[],
                     $7::bigint[])
ON CONFLICT (sequence_id, step, variant) DO UPDATE SET
    sent = v.sent + EXCLUDED.sent,
    replied = v.replied + EXCLUDED.replied,
    purchased = v.purchased + EXCLUDED.purchased,
    revenue_cents = v.revenue_cents + EXCLUDED.revenue_cents
"""
_ADD_SEQUENCE_COUNTS = """
UPDATE sequences AS s SET entered = s.entered + u.e, completed = s.completed + u.c
FROM unnest($1::bigint[], $2::int[], $3::int[]) AS u(id, e, c) WHERE s.sequence_id = u.id
"""
_ADD_MESSAGES = """
INSERT INTO sequence_messages (message_id, tenant_id, sequence_id, step, variant)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::int[], $5::int[])
ON CONFLICT DO NOTHING
"""


class RunsFold:
    def __init__(self) -> None:
        self.runs = TableRows("sequence_enrolments", "stream_id", "text", _COLUMNS)
        self.steps: dict[tuple[int, int], dict[str, Any]] = {}
        self.sequences: dict[int, list[int]] = {}  # sequence -> [entered, completed]
        self.variants: dict[tuple[int, int, int], dict[str, int]] = {}  # (sequence, step, v)
        self.messages: list[tuple[str, str, int, int, int | None]] = []
        self.by_fan: dict[tuple[str, int], set[str]] = {}
        # (message, tenant) -> (sequence, step, variant)
        self.step_of: dict[tuple[str, str], tuple[int, int, int | None]] = {}

    async def load(self, sql: Sql, events: Sequence[RecordedEvent]) -> None:
        """The rows and step messages the batch's events may touch."""
        streams = {
            r.stream_id
            for r in events
            if type(r.event) in RUN_EVENTS and type(r.event) is not Enrolment.Enrolled
        }
        fans = {
            (r.metadata.tenant, r.event.fan_id)  # type: ignore[attr-defined]
            for r in events
            if type(r.event) is InboundMessage.Received
        }
        if fans:
            tenants, fan_ids = zip(*fans, strict=True)
            rows = await sql.fetch(
                "SELECT e.stream_id FROM sequence_enrolments e JOIN unnest($1::text[],"
                " $2::bigint[]) AS a(t, f) ON e.tenant_id = a.t AND e.fan_id = a.f",
                list(tenants),
                list(fan_ids),
            )
            streams |= {row["stream_id"] for row in rows}
        await self.runs.load(sql, streams)
        for row in self.runs.present():
            self.by_fan.setdefault((row["tenant_id"], row["fan_id"]), set()).add(row["stream_id"])
        await self._load_step_messages(sql, events)

    async def _load_step_messages(self, sql: Sql, events: Sequence[RecordedEvent]) -> None:
        asked = {
            (message_id_of(r.stream_id), r.metadata.tenant)
            for r in events
            if type(r.event) is Message.Purchased
        }
        if not asked:
            return
        message_ids, tenants = zip(*asked, strict=True)
        rows = await sql.fetch(
            "SELECT m.message_id::text AS message_id, m.tenant_id, m.sequence_id, m.step,"
            " m.variant"
            " FROM sequence_messages m JOIN unnest($1::uuid[], $2::text[]) AS a(m, t)"
            " ON m.message_id = a.m AND m.tenant_id = a.t",
            list(message_ids),
            list(tenants),
        )
        for row in rows:
            key = (row["message_id"], row["tenant_id"])
            self.step_of[key] = (row["sequence_id"], row["step"], row["variant"])

    def apply(self, recorded: RecordedEvent) -> None:
        event: Any = recorded.event
        kind = type(event)
        tenant = recorded.metadata.tenant
        if kind is InboundMessage.Received:
            self._replied(tenant, event.fan_id)
        elif kind is Message.Purchased:
            hit = self.step_of.get((message_id_of(recorded.stream_id), tenant))
            if hit is not None:
                sequence_id, step, variant = hit
                self._count(sequence_id, step, "purchased", variant=variant)
                self._count(sequence_id, step, "revenue_cents", event.amount_cents, variant)
        elif kind is Enrolment.Enrolled:
            self._enrolled(recorded)
        else:
            self._moved(recorded)

    def _enrolled(self, recorded: RecordedEvent) -> None:
        event: Any = recorded.event
        if self.runs.get(recorded.stream_id) is not None:
            return
        self.runs.put(
            recorded.stream_id,
            {
                "tenant_id": event.tenant,
                "sequence_id": event.sequence_id,
                "fan_id": event.fan_id,
                "next_step": 0,
                "due_at": event.due_at,
                "last_sent_step": None,
                "last_sent_variant": None,
                "replied_step": None,
                "version": recorded.version,
            },
        )
        self.by_fan.setdefault((event.tenant, event.fan_id), set()).add(recorded.stream_id)
        self.sequences.setdefault(event.sequence_id, [0, 0])[0] += 1
        self._count(event.sequence_id, 0, "entered")

    def _moved(self, recorded: RecordedEvent) -> None:
        event: Any = recorded.event
        row = self.runs.get(recorded.stream_id)
        if row is None:
            return
        sequence_id = row["sequence_id"]
        if isinstance(event, Enrolment.StepSent):
            row.update(
                next_step=event.step + 1,
                due_at=event.next_due,
                last_sent_step=event.step,
                last_sent_variant=event.variant,
                version=recorded.version,
            )
            self._count(sequence_id, event.step, "sent", variant=event.variant)
            if event.next_due is not None:
                self._count(sequence_id, event.step + 1, "entered")
            tenant = recorded.metadata.tenant
            self.messages.append((event.message_id, tenant, sequence_id, event.step, event.variant))
            self.step_of[(event.message_id, tenant)] = (sequence_id, event.step, event.variant)
            return
        self.runs.remove(recorded.stream_id)
        if isinstance(event, Enrolment.Completed):
            self.sequences.setdefault(sequence_id, [0, 0])[1] += 1
            return
        exited = self._counts(sequence_id, row["next_step"])["exited"]
        exited[event.reason] = exited.get(event.reason, 0) + 1

    def _replied(self, tenant: str, fan_id: int) -> None:
        for stream_id in self.by_fan.get((tenant, fan_id), ()):
            row = self.runs.get(stream_id)
            if row is None or row["last_sent_step"] is None:
                continue
            if row["replied_step"] != row["last_sent_step"]:
                row["replied_step"] = row["last_sent_step"]
                self._count(
                    row["sequence_id"],
                    row["last_sent_step"],
                    "replied",
                    variant=row["last_sent_variant"],
                )

    def _counts(self, sequence_id: int, step: int) -> dict[str, Any]:
        key = (sequence_id, step)
        if key not in self.steps:
            self.steps[key] = dict.fromkeys(_COUNTS, 0) | {"exited": {}}
        return self.steps[key]

    def _count(
        self, sequence_id: int, step: int, column: str, by: int = 1, variant: int | None = None
    ) -> None:
        self._counts(sequence_id, step)[column] += by
        if variant is not None:
            key = (sequence_id, step, variant)
            counts = self.variants.setdefault(key, dict.fromkeys(_VARIANT_COUNTS, 0))
            counts[column] += by

    async def flush(self, sql: Sql) -> None:
        await self.runs.flush(sql)
        if self.steps:
            keys = list(self.steps)
            counts = [self.steps[key] for key in keys]
            await sql.execute(
                _ADD_STEP_COUNTS,
                [sequence_id for sequence_id, _ in keys],
                [step for _, step in keys],
                *([c[column] for c in counts] for column in _COUNTS),
                [msgspec.json.encode(c["exited"]).decode() for c in counts],
            )
        if self.variants:
            keys = list(self.variants)
            await sql.execute(
                _ADD_VARIANT_COUNTS,
                *([key[i] for key in keys] for i in range(3)),
                *([self.variants[key][column] for key in keys] for column in _VARIANT_COUNTS),
            )
        if self.sequences:
            ids = list(self.sequences)
            entered = [self.sequences[i][0] for i in ids]
            completed = [self.sequences[i][1] for i in ids]
            await sql.execute(_ADD_SEQUENCE_COUNTS, ids, entered, completed)
        if self.messages:
            columns = [list(column) for column in zip(*self.messages, strict=True)]
            await sql.execute(_ADD_MESSAGES, *columns)
