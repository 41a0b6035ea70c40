"""The sequences read model: each sequence with its per-step metrics, and the runs under way
with when their next step falls due (the automation worker's timers).

A sequence's events take a statement each; runs, replies and purchases are folded per batch
(projections/sequence_runs.py), as most projections fold theirs (projections/base.py).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import msgspec

from application.ports import RecordedEvent, Sql
from domain.inbound import InboundMessage
from domain.message import Message
from domain.sequence import Sequence
from projections.sequence_runs import RUN_EVENTS, RunsFold

_SEQUENCE_EVENTS = frozenset(
    {Sequence.Created, Sequence.Updated, Sequence.Paused, Sequence.Resumed, Sequence.Archived}
)
_STATUS = {Sequence.Paused: "paused", Sequence.Resumed: "active", Sequence.Archived: "archived"}
_HANDLED = _SEQUENCE_EVENTS | RUN_EVENTS | {InboundMessage.Received, Message.Purchased}


class SequencesProjection:
    name = "sequences"
    tables = (
        *("sequences", "sequence_step_metrics", "sequence_enrolments", "sequence_messages"),
        "sequence_step_variants",
    )

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        await self.apply_batch(sql, [recorded])

    async def apply_batch(self, sql: Sql, batch: Seq[RecordedEvent]) -> None:
        """In log order: a sequence's own events a statement each (they are few), the runs'
        events and the replies and purchases folded (projections.sequence_runs)."""
        events = [r for r in batch if type(r.event) in _HANDLED]
        if not events:
            return
        runs = RunsFold()
        await runs.load(sql, events)
        for recorded in events:
            if type(recorded.event) in _SEQUENCE_EVENTS:
                await _sequence(sql, recorded)
            else:
                runs.apply(recorded)
        await runs.flush(sql)


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
