"""The composition root: builds every adapter once, for the API, the workers and the tests."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from adapters.config import Settings
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.fan_read_model import PostgresFanReadModel
from adapters.postgres.ids import SequenceIds
from adapters.postgres.pool import create_pool
from adapters.postgres.projection_store import PostgresProjectionStore
from projections.base import Projection
from projections.fans import FansProjection


@dataclass
class Container:
    settings: Settings
    pool: asyncpg.Pool
    events: PostgresEventStore
    ids: SequenceIds
    projection_store: PostgresProjectionStore
    fans: PostgresFanReadModel

    async def close(self) -> None:
        await self.projection_store.close()
        await self.pool.close()


def core_projections() -> list[Projection]:
    return [FansProjection()]


async def build(settings: Settings) -> Container:
    pool = await create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    events = PostgresEventStore(pool)
    return Container(
        settings=settings,
        pool=pool,
        events=events,
        ids=SequenceIds(pool),
        projection_store=PostgresProjectionStore(pool, events, settings.database_url),
        fans=PostgresFanReadModel(pool),
    )
