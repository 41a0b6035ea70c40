"""The churn model's SQL: features as of a day (from projections/churn_activity.py's tables),
the models and the scores, one account at a time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from application.churn import CHURN_DAYS, FanActivity
from application.churn_training import Snapshot, TrainedModel

# Fans known as of $2 (created before it, or with activity before it: imported history), not
# deleted before it; sums over the days before $2; with a label window, their messages and
# purchases in [$2, $3). $4 is $2 as a moment (UTC midnight).
_AS_OF = """
SELECT f.fan_id,
  least(f.subscribed_at, (f.first_seen_at AT TIME ZONE 'UTC')::date,
        min(d.day) FILTER (WHERE d.day < $2)) AS first_day,
  coalesce(sum(d.purchases) FILTER (WHERE d.day < $2), 0) AS purchases,
  coalesce(sum(d.spend_cents) FILTER (WHERE d.day < $2), 0)::bigint AS spend_cents,
  coalesce(sum(d.purchases) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0) AS purchases_30,
  coalesce(sum(d.spend_cents) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0)::bigint
    AS spend_30,
  coalesce(sum(d.spend_cents) FILTER (WHERE d.day >= $2 - 60 AND d.day < $2 - 30), 0)::bigint
    AS spend_prev_30,
  coalesce(sum(d.fan_messages) FILTER (WHERE d.day < $2), 0) AS fan_messages,
  coalesce(sum(d.fan_messages) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0)
    AS fan_messages_30,
  coalesce(sum(d.account_messages) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0)
    AS account_messages_30,
  coalesce(sum(d.campaign_messages) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0)
    AS campaign_messages_30,
  coalesce(sum(d.reads) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0) AS reads_30,
  coalesce(sum(d.fan_replies) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2), 0)
    AS fan_replies_30,
  coalesce(sum(d.answers) FILTER (WHERE d.day < $2), 0) AS answers,
  coalesce(sum(d.answer_seconds) FILTER (WHERE d.day < $2), 0)::bigint AS answer_seconds,
  count(*) FILTER (WHERE d.day >= $2 - 30 AND d.day < $2
                   AND (d.fan_messages > 0 OR d.purchases > 0)) AS active_days_30,
  max(d.last_purchase_at) FILTER (WHERE d.day < $2) AS last_purchase_at,
  max(d.last_fan_message_at) FILTER (WHERE d.day < $2) AS last_fan_message_at,
  max(d.last_account_message_at) FILTER (WHERE d.day < $2) AS last_account_message_at,
  coalesce(sum(d.fan_messages + d.purchases) FILTER (WHERE d.day >= $2), 0) AS activity_after
FROM churn_fans f
LEFT JOIN churn_fan_days d
  ON d.tenant_id = f.tenant_id AND d.fan_id = f.fan_id AND d.day < $3
WHERE f.tenant_id = $1 AND (f.deleted_at IS NULL OR f.deleted_at >= $4)
GROUP BY f.fan_id, f.first_seen_at, f.subscribed_at
HAVING f.first_seen_at < $4 OR min(d.day) FILTER (WHERE d.day < $2) IS NOT NULL
"""

_POSITION = "SELECT position FROM projection_checkpoints WHERE name = 'churn_activity'"


async def activity_as_of(sql: Any, tenant: str, as_of: date, *, label: bool) -> list[FanActivity]:
    """Each fan's activity as of ``as_of``; with ``label``, its activity in the 30 days after."""
    until = as_of + timedelta(days=CHURN_DAYS) if label else as_of
    moment = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    rows = await sql.fetch(_AS_OF + " ORDER BY f.fan_id", tenant, as_of, until, moment)
    return [
        FanActivity(**{k: v for k, v in row.items() if k != "activity_after" or label})
        for row in rows
    ]


class PostgresChurnStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def training_turn(self, tenant: str) -> AsyncIterator[bool]:
        """True if this process may train the account now, held until the block ends; False
        while another process trains it. Two worker replicas (a rolling deploy) that both
        found a model due would otherwise save two versions seconds apart, and an `atRisk`
        sequence with reentry `always` would enrol its fans twice."""
        async with self._pool.acquire() as conn:
            mine = await conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 22))", tenant
            )
            try:
                yield mine
            finally:
                if mine:
                    await conn.execute(
                        "SELECT pg_advisory_unlock(hashtextextended($1, 22))", tenant
                    )

    async def tenants(self) -> list[str]:
        rows = await self._pool.fetch("SELECT DISTINCT tenant_id FROM churn_fans ORDER BY 1")
        return [row["tenant_id"] for row in rows]

    async def snapshot(self, tenant: str, train: str, validation: str, current: str) -> Snapshot:
        # One snapshot for the position and the three reads: the position names what they saw.
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            position = await conn.fetchval(_POSITION)
            return Snapshot(
                position=int(position or 0),
                train=await activity_as_of(conn, tenant, date.fromisoformat(train), label=True),
                validation=await activity_as_of(
                    conn, tenant, date.fromisoformat(validation), label=True
                ),
                current=await activity_as_of(
                    conn, tenant, date.fromisoformat(current), label=False
                ),
            )

    async def save(self, tenant: str, model: TrainedModel, scores: list[Any]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            # Two trainings of one account at once take turns: versions never collide.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 21))", tenant)
            version = await conn.fetchval(
                "SELECT coalesce(max(version), 0) + 1 FROM churn_models WHERE tenant_id = $1",
                tenant,
            )
            await conn.execute(
                "INSERT INTO churn_models (tenant_id, version, trained_at, position,"
                " train_cutoff, validation_cutoff, parameters, metrics)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                tenant,
                version,
                model.trained_at,
                model.position,
                date.fromisoformat(model.train_cutoff),
                date.fromisoformat(model.validation_cutoff),
                msgspec.to_builtins(model.parameters),
                msgspec.to_builtins(model.metrics),
            )
            await conn.execute("DELETE FROM churn_scores WHERE tenant_id = $1", tenant)
            # Only for live fans the activity view still holds, each row locked against its
            # erasure or deletion meanwhile: the projector changes the fan's row before it
            # deletes the fan's score, so it waits for this commit and then deletes it.
            await conn.execute(
                "INSERT INTO churn_scores (tenant_id, fan_id, model_version, risk, factors)"
                " SELECT f.tenant_id, f.fan_id, $2, s.risk, s.factors::jsonb"
                " FROM churn_fans f"
                " JOIN unnest($3::bigint[], $4::float8[], $5::text[]) AS s(fan_id, risk, factors)"
                "   ON s.fan_id = f.fan_id"
                " WHERE f.tenant_id = $1 AND f.deleted_at IS NULL FOR SHARE OF f",
                tenant,
                version,
                [s.fan_id for s in scores],
                [s.risk for s in scores],
                # As JSON text: a list of lists would be read as a two-dimensional array.
                [msgspec.json.encode(s.factors).decode() for s in scores],
            )
            return int(version)

    async def latest_model(
        self, tenant: str, db: asyncpg.Pool | asyncpg.Connection | None = None
    ) -> asyncpg.Record | None:
        return await (db or self._pool).fetchrow(
            "SELECT version, trained_at, position, train_cutoff, validation_cutoff, metrics"
            " FROM churn_models WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
            tenant,
        )

    async def ranked(
        self, tenant: str, after: tuple[float, int] | None, limit: int
    ) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
        """The latest model and a page of its scores, read in one snapshot: a retrain
        committing between the two reads cannot pair one model with another's scores."""
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            model = await self.latest_model(tenant, connection)
            return model, await self.page(tenant, after, limit, connection)

    async def page(
        self,
        tenant: str,
        after: tuple[float, int] | None,
        limit: int,
        db: asyncpg.Pool | asyncpg.Connection | None = None,
    ) -> list[asyncpg.Record]:
        """Scores, riskiest first (ties by fan id), after a keyset cursor: live fans only,
        the projector deleting a deleted or erased fan's score. One walk of the
        (tenant, risk desc, fan id) index, however many fans the account has."""
        return await (db or self._pool).fetch(
            "SELECT s.fan_id, s.risk, s.factors FROM churn_scores s"
            " WHERE s.tenant_id = $1"
            "   AND ($2::float8 IS NULL OR s.risk < $2 OR (s.risk = $2 AND s.fan_id > $3))"
            " ORDER BY s.risk DESC, s.fan_id LIMIT $4",
            tenant,
            after[0] if after else None,
            after[1] if after else 0,
            limit,
        )
