"""Hand-written SQL over the sequences read tables (written by projections/sequences.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.ab_results import VariantCounts
from application.sequence_queries import DueEnrolment, SequencePage, SequenceView, StepMetrics

_BIGINT = range(-(2**63), 2**63)
_SEQUENCE = """
SELECT s.sequence_id, s.name, s.status, s.trigger, s.steps, s.exit_rules, s.reentry,
       s.time_zone, s.created_at, s.updated_at, s.version, s.entered, s.completed,
       (SELECT count(*) FROM sequence_enrolments e WHERE e.sequence_id = s.sequence_id) AS active
FROM sequences s
WHERE s.tenant_id = $1
"""
# Due runs of sequences that may send (an archived one's runs are claimed to be ended),
# but for rows the claimer has just moved on at the version shown (the view has not caught up
# with what it appended: left in, they would fill the batch again and again). Ordered by due
# time so that a backlog goes out oldest first.
_DUE = """
SELECT e.stream_id, e.tenant_id, e.version
FROM sequence_enrolments e JOIN sequences s USING (sequence_id)
WHERE e.due_at <= $1 AND s.status <> 'paused'
  AND NOT EXISTS (
      SELECT 1 FROM unnest($3::text[], $4::int[]) AS done(stream_id, version)
      WHERE done.stream_id = e.stream_id AND done.version = e.version)
ORDER BY e.due_at
LIMIT $2
FOR UPDATE OF e SKIP LOCKED
"""


class PostgresSequenceReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_sequences(self, tenant: str, limit: int, cursor: str | None) -> SequencePage:
        """Newest first."""
        before = decode_cursor(cursor, tuple[int])[0] if cursor else 2**63 - 1
        rows = await self._pool.fetch(
            _SEQUENCE + " AND s.sequence_id < $2 ORDER BY s.sequence_id DESC LIMIT $3",
            tenant,
            before,
            limit + 1,
        )
        items = [_view(row) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1].sequence_id) if len(rows) > limit else None
        return SequencePage(items, next_cursor)

    async def get_sequence(self, tenant: str, sequence_id: int) -> SequenceView | None:
        if sequence_id not in _BIGINT:
            return None
        row = await self._pool.fetchrow(_SEQUENCE + " AND s.sequence_id = $2", tenant, sequence_id)
        if row is None:
            return None
        metrics = await self._pool.fetch(
            "SELECT * FROM sequence_step_metrics WHERE sequence_id = $1 ORDER BY step",
            sequence_id,
        )
        found = {m["step"]: m for m in metrics}
        tested = await self._pool.fetch(
            "SELECT * FROM sequence_step_variants WHERE sequence_id = $1", sequence_id
        )
        counts = {(v["step"], v["variant"]): v for v in tested}
        per_step = [
            msgspec.structs.replace(
                _metrics(step, found.get(step)),
                variants=[
                    _variant_counts(counts.get((step, variant)))
                    for variant in range(len(fields.get("variants") or ()))
                ],
            )
            for step, fields in enumerate(row["steps"])
        ]
        return _view(row, per_step)

    async def live_triggers(self, tenants: list[str]) -> dict[str, list[tuple[int, Any]]]:
        """Per tenant, (sequence id, trigger) of its active sequences."""
        rows = await self._pool.fetch(
            "SELECT tenant_id, sequence_id, trigger FROM sequences"
            " WHERE tenant_id = ANY($1::text[]) AND status = 'active'",
            tenants,
        )
        found: dict[str, list[tuple[int, Any]]] = {}
        for row in rows:
            found.setdefault(row["tenant_id"], []).append((row["sequence_id"], row["trigger"]))
        return found

    async def active_runs(self, tenant: str, fan_ids: list[int]) -> dict[int, list[str]]:
        """Per fan, the enrolment streams of its runs under way."""
        rows = await self._pool.fetch(
            "SELECT fan_id, stream_id FROM sequence_enrolments"
            " WHERE tenant_id = $1 AND fan_id = ANY($2::bigint[])",
            tenant,
            fan_ids,
        )
        found: dict[int, list[str]] = {}
        for row in rows:
            found.setdefault(row["fan_id"], []).append(row["stream_id"])
        return found

    @asynccontextmanager
    async def claim_due(
        self, now: datetime, limit: int, skip: Sequence[tuple[str, int]] = ()
    ) -> AsyncIterator[list[DueEnrolment]]:
        """Due runs, each locked until the block ends: another worker's claim skips them.
        ``skip``: (stream id, version) of rows to leave out at that version."""
        streams = [stream for stream, _ in skip]
        versions = [version for _, version in skip]
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_DUE, now, limit, streams, versions)
            yield [DueEnrolment(r["stream_id"], r["tenant_id"], r["version"]) for r in rows]


def _variant_counts(row: Any) -> VariantCounts:
    if row is None:
        return VariantCounts()
    return VariantCounts(
        sent=row["sent"],
        replied=row["replied"],
        purchased=row["purchased"],
        revenue_cents=row["revenue_cents"],
    )


def _metrics(step: int, row: Any) -> StepMetrics:
    if row is None:
        return StepMetrics(step=step)
    return StepMetrics(
        step=step,
        entered=row["entered"],
        sent=row["sent"],
        replied=row["replied"],
        purchased=row["purchased"],
        revenue_cents=row["revenue_cents"],
        exited=dict(row["exited"]),
    )


def _view(row: Any, metrics: list[StepMetrics] | None = None) -> SequenceView:
    return SequenceView(
        sequence_id=row["sequence_id"],
        name=row["name"],
        status=row["status"],
        trigger=row["trigger"],
        steps=row["steps"],
        exit_rules=row["exit_rules"],
        reentry=row["reentry"],
        time_zone=row["time_zone"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        entered=row["entered"],
        completed=row["completed"],
        active=row["active"],
        metrics=metrics or [],
    )
