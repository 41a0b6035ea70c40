"""Rebuild read models without downtime: replay the log into fresh tables, then swap.

1. A schema of the rebuild's own (``rebuild_<name>``, or ``rebuild_all``) gets a copy of each
   live table's definition — columns, defaults, generated columns, checks, primary and unique
   keys under their own names. Secondary indexes come last (step 3): a million upserts run
   faster without them.
2. A ``ProjectionGroupRunner`` replays the log from position 0 into it, under checkpoints of
   its own (``fans@rebuild_fans``); each projection's batch commits with its checkpoint, so an
   interrupted rebuild picks up where it stopped when run again. The live tables keep serving
   meanwhile. It needs a pool of len(projections) + 1 connections to run at full speed.
3. Near the head, the secondary indexes are built (same names as the live ones).
4. The swap, one transaction: take every live projector's advisory lock (a live runner then
   waits, and finds the new checkpoint when it gets the lock), apply what was appended since,
   drop the live tables, move the rebuilt ones into ``public``, give the live checkpoint the
   rebuild's position, drop the rebuild's schema. Readers block for the length of the swap
   (the DDL's exclusive locks), never longer; statements prepared on pooled connections are
   re-planned by Postgres against the new tables (same names, same row types).

Caveats (no table of ours has them): a sequence owned by a live column would be dropped with
the old table, and a foreign key pointing at a projection's table would block the swap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from adapters.postgres.event_store import questions
from application.ports import Checkpoint, ProjectionStore
from projections.base import Projection
from projections.runner import ProjectionGroupRunner, checkpoint_name, replay_gc


@dataclass
class Progress:
    applied: int  # events read by this run
    remaining: int  # about: events between the rebuild's checkpoint and the head
    seconds: float

    @property
    def rate(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return self.remaining / self.rate if self.rate > 0 else None


@dataclass
class RebuildResult:
    schema: str
    events: int  # applied by this run (a resumed rebuild counts only its own)
    seconds: float
    resumed: bool
    checkpoint: Checkpoint


def rebuild_schema(projections: Sequence[Projection]) -> str:
    """The same set of projections always rebuilds in the same schema: that is how a second
    run finds the first one's work."""
    name = projections[0].name if len(projections) == 1 else "all"
    return "rebuild_" + re.sub(r"[^a-z0-9_]", "_", name.lower())


async def rebuild(
    pool: asyncpg.Pool,
    store: ProjectionStore,
    projections: Sequence[Projection],
    *,
    batch_size: int = 5000,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every: float = 0.5,
) -> RebuildResult:
    if not projections:
        raise ValueError("nothing to rebuild")
    schema = rebuild_schema(projections)
    resumed = await _prepare(pool, schema, projections)
    runner = ProjectionGroupRunner(store, list(projections), schema=schema, batch_size=batch_size)
    started = time.perf_counter()
    applied = 0
    remaining = await questions.events_after_checkpoints(pool, runner.names)
    shown = started
    try:
        with replay_gc():
            while batch := await runner.run_batch():
                applied += batch
                now = time.perf_counter()
                if on_progress is not None and now - shown >= progress_every:
                    shown = now
                    on_progress(Progress(applied, max(remaining - applied, 0), now - started))
        await build_indexes(pool, schema, projections)
        checkpoint = await _swap(pool, store, runner, schema, projections)
    finally:
        await runner.close()
    seconds = time.perf_counter() - started
    if on_progress is not None:
        on_progress(Progress(applied, 0, seconds))
    return RebuildResult(schema, applied, seconds, resumed, checkpoint)


async def _prepare(pool: asyncpg.Pool, schema: str, projections: Sequence[Projection]) -> bool:
    """Create the schema and the tables' copies unless an earlier run did; True if it had."""
    async with pool.acquire() as conn, conn.transaction():
        # Two rebuilds of the same set would apply every batch twice over each other's
        # checkpoints; the lock makes the second one wait here, then resume.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", schema)
        existed = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
        for projection in projections:
            for table in projection.tables:
                await clone_table(conn, schema, table)
    return bool(existed)


async def clone_table(conn: asyncpg.Connection, schema: str, table: str) -> None:
    if await conn.fetchval("SELECT to_regclass($1)", f"{_q(schema)}.{_q(table)}"):
        return
    await conn.execute(
        f"CREATE TABLE {_q(schema)}.{_q(table)}"
        f" (LIKE public.{_q(table)} INCLUDING ALL EXCLUDING INDEXES)"
    )
    # Keys under the live ones' names, so the swapped table is the table the migrations made.
    constraints = await conn.fetch(
        """
        SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
        WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x')
        """,
        f"public.{_q(table)}",
    )
    for row in constraints:
        await conn.execute(
            f"ALTER TABLE {_q(schema)}.{_q(table)}"
            f" ADD CONSTRAINT {_q(row['conname'])} {row['definition']}"
        )


async def build_indexes(pool: asyncpg.Pool, schema: str, projections: Sequence[Projection]) -> None:
    """The live tables' other indexes, same names and definitions, on the rebuilt tables."""
    for projection in projections:
        for table in projection.tables:
            rows = await pool.fetch(
                """
                SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = $1::regclass
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
                """,
                f"public.{_q(table)}",
            )
            for row in rows:
                definition = row["definition"].replace(
                    f" ON public.{table} ", f" ON {_q(schema)}.{_q(table)} ", 1
                )
                definition = definition.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
                definition = definition.replace(
                    "CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX IF NOT EXISTS ", 1
                )
                await pool.execute(definition)


async def _swap(
    pool: asyncpg.Pool,
    store: ProjectionStore,
    runner: ProjectionGroupRunner,
    schema: str,
    projections: Sequence[Projection],
) -> Checkpoint:
    live_names = sorted(checkpoint_name(p, "public") for p in projections)
    async with store.transaction(schema) as sql:
        # Generous: readers and live projector batches hold their locks for milliseconds.
        await sql.execute("SET LOCAL lock_timeout = '60s'")
        for name in live_names:  # the live projectors pause at their next batch
            await sql.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name)
        while await runner.apply_next(sql):  # what was appended since, under the locks
            pass
        for projection in projections:
            for table in projection.tables:
                await sql.execute(f"DROP TABLE public.{_q(table)}")
                await sql.execute(f"ALTER TABLE {_q(schema)}.{_q(table)} SET SCHEMA public")
        for projection, rebuilt in zip(projections, runner.names, strict=True):
            await sql.execute(
                """
                INSERT INTO public.projection_checkpoints (name, transaction_id, position)
                SELECT $1, transaction_id, position FROM public.projection_checkpoints
                WHERE name = $2
                ON CONFLICT (name) DO UPDATE
                SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position,
                    updated_at = now(), last_error = NULL, last_error_at = NULL
                """,
                checkpoint_name(projection, "public"),
                rebuilt,
            )
        row = await sql.fetchrow(
            "SELECT coalesce(max(transaction_id), '0') AS tx, coalesce(max(position), 0) AS pos"
            " FROM public.projection_checkpoints WHERE name = ANY($1::text[])",
            runner.names,
        )
        await sql.execute(
            "DELETE FROM public.projection_checkpoints WHERE name = ANY($1::text[])", runner.names
        )
        await sql.execute(f"DROP SCHEMA {_q(schema)}")
    return Checkpoint(row["tx"], row["pos"])


async def abandon(pool: asyncpg.Pool, projections: Sequence[Projection]) -> bool:
    """Drop an unfinished rebuild's schema and checkpoints; False if there was none."""
    schema = rebuild_schema(projections)
    names = [checkpoint_name(p, schema) for p in projections]
    async with pool.acquire() as conn, conn.transaction():
        existed = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
        )
        await conn.execute(f"DROP SCHEMA IF EXISTS {_q(schema)} CASCADE")
        await conn.execute("DELETE FROM projection_checkpoints WHERE name = ANY($1::text[])", names)
    return bool(existed)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
