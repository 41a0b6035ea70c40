"""Fans appended through the store, the event chain sealed over them, and fancrm's log as
eventsourcing's recorder: for the tests of adapters/postgres/eventsourcing_log/ and
adapters/analytics.py."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters import bootstrap
from adapters.postgres.event_chain_store import PostgresEventChain
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.eventsourcing_log import Factory
from adapters.postgres.eventsourcing_log.recorder import LogRecorder
from application.ports import EventMetadata
from domain.fan import Fan
from tests.support.settings import TEST_MASTER_KEY

# Fan ids unique within the session database, which other tests share.
_fan_ids = itertools.count(random.SystemRandom().randrange(10**12, 10**13, 10**6))


def new_fan_id() -> int:
    return next(_fan_ids)


def meta(tenant: str) -> EventMetadata:
    ids = [uuid.uuid4().hex for _ in range(3)]
    return EventMetadata(
        tenant=tenant, actor=f"{tenant}:key", correlation_id=ids[0], causation_id=ids[1],
        trace_id=ids[2],
    )  # fmt: skip


async def add_fan(
    store: PostgresEventStore, tenant: str = "user-1", *, updates: int = 0, name: str = "Ann"
) -> str:
    """A new fan with ``updates`` FanUpdated events, appended through the store."""
    fan_id = new_fan_id()
    fan = Fan.register(fan_id=fan_id, tenant=tenant, name=name, email=f"{fan_id}@example.com")
    for i in range(updates):
        fan.update(value_cents=100 * (i + 1))
    await store.append(
        fan.id, "fan", list(fan.collect_events()), expected_version=0, metadata=meta(tenant)
    )
    return fan.id


def env_for(url: str, **more: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "CRM_MASTER_KEY": TEST_MASTER_KEY, **more}


@asynccontextmanager
async def log_recorder(url: str, **more: str) -> AsyncIterator[LogRecorder]:
    factory = Factory(env_for(url, **more))
    try:
        yield await asyncio.to_thread(factory.application_recorder)
    finally:
        await asyncio.to_thread(factory.close)


async def seal(container: bootstrap.Container, expect: int | None = None) -> int:
    """Seal what the sealer can now; with ``expect``, until that many are sealed: the sealer
    waits for every older transaction of the server (other tests' too) to end."""
    chain = PostgresEventChain(container.pool)
    sealed = await chain.catch_up()
    async with asyncio.timeout(20):
        while expect is not None and sealed < expect:
            await asyncio.sleep(0.02)
            sealed += await chain.catch_up()
    return sealed
