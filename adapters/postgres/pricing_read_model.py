"""Queries of the pricing read model (projections/pricing.py), one tenant at a time."""

from __future__ import annotations

import asyncpg

from application.pricing import PriceCounts

_BIGINT = range(-(2**63), 2**63)


class PricingReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def counts(
        self, tenant: str, fan_id: int | None
    ) -> tuple[list[PriceCounts], list[PriceCounts]]:
        async with self._pool.acquire() as connection:
            account = await connection.fetch(
                "SELECT price_cents, offers, purchases FROM pricing_account_counts"
                " WHERE tenant_id = $1",
                tenant,
            )
            fan = []
            if fan_id is not None and fan_id in _BIGINT:
                fan = await connection.fetch(
                    "SELECT price_cents, offers, purchases FROM pricing_fan_counts"
                    " WHERE tenant_id = $1 AND fan_id = $2",
                    tenant,
                    fan_id,
                )
        return [PriceCounts(*row) for row in account], [PriceCounts(*row) for row in fan]

    async def for_fans(
        self, tenant: str, fan_ids: list[int]
    ) -> tuple[list[PriceCounts], dict[int, list[PriceCounts]]]:
        async with self._pool.acquire() as connection:
            account = await connection.fetch(
                "SELECT price_cents, offers, purchases FROM pricing_account_counts"
                " WHERE tenant_id = $1",
                tenant,
            )
            rows = await connection.fetch(
                "SELECT fan_id, price_cents, offers, purchases FROM pricing_fan_counts"
                " WHERE tenant_id = $1 AND fan_id = ANY($2::bigint[])",
                tenant,
                [fan_id for fan_id in fan_ids if fan_id in _BIGINT],
            )
        fans: dict[int, list[PriceCounts]] = {}
        for row in rows:
            fans.setdefault(row["fan_id"], []).append(PriceCounts(*list(row.values())[1:]))
        return [PriceCounts(*row) for row in account], fans

    async def position(self) -> int:
        """The log position the counts have seen (the pricing projector's checkpoint)."""
        position = await self._pool.fetchval(
            "SELECT position FROM projection_checkpoints WHERE name = 'pricing'"
        )
        return int(position or 0)
