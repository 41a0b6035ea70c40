"""The composition root: builds every adapter once, for the API, the workers and the tests."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from adapters.config import Settings
from adapters.crypto import MasterKey, MasterKeyError
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.fan_read_model import PostgresFanReadModel
from adapters.postgres.ids import SequenceIds
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.pool import create_pool
from adapters.postgres.projection_store import PostgresProjectionStore
from adapters.postgres.subject_keys import SubjectKeys
from projections.base import Projection
from projections.fans import FansProjection


@dataclass
class Container:
    settings: Settings
    pool: asyncpg.Pool
    keys: SubjectKeys
    events: PostgresEventStore
    ids: SequenceIds
    projection_store: PostgresProjectionStore
    fans: PostgresFanReadModel

    async def close(self) -> None:
        await self.projection_store.close()
        await self.pool.close()


def core_projections() -> list[Projection]:
    return [FansProjection()]


def master_keys(settings: Settings) -> tuple[MasterKey, list[MasterKey]]:
    if not settings.master_key:
        raise MasterKeyError(
            "CRM_MASTER_KEY is not set: personal data is stored encrypted and the service "
            "will not start without its master key (`crm keys generate` makes one; "
            "`crm dev` keeps one in its data folder)"
        )
    return MasterKey.parse(settings.master_key), [
        MasterKey.parse(key) for key in settings.previous_master_keys
    ]


async def build(settings: Settings) -> Container:
    """Wire every adapter. Refuses (MasterKeyError) before writing anything if the master key
    is missing or is not the one this database's data keys are wrapped with."""
    master, previous = master_keys(settings)
    pool = await create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    keys = SubjectKeys(pool, master, previous)
    try:
        await keys.verify_master_key()
    except BaseException:
        await pool.close()
        raise
    events = PostgresEventStore(pool, PersonalDataCodec(keys))
    return Container(
        settings=settings,
        pool=pool,
        keys=keys,
        events=events,
        ids=SequenceIds(pool),
        projection_store=PostgresProjectionStore(pool, events, settings.database_url),
        fans=PostgresFanReadModel(pool),
    )
