"""The app as `crm serve` runs it: built from settings, its container made at start-up (the
lifespan), rather than around a container a test or `crm dev` hands it."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from adapters import bootstrap
from adapters.http.app import create_app
from tests.support.settings import settings_for

SEND = "/api/onlyfans/messages/send"


@asynccontextmanager
async def served(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app started and stopped within the test's own task (its lifespan needs that)."""
    threshold = gc.get_threshold()
    app = create_app(settings=settings_for(database_url, pool_min_size=1, pool_max_size=2))
    try:
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield client
    finally:
        # What start-up did to this (the test) process's collector, undone for the others.
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def test_the_served_app_queues_messages_to_a_fan_again_and_again(
    database_url: str, container: bootstrap.Container, auth: dict[str, str]
) -> None:
    async with served(database_url) as api:
        fan = await api.post("/api/crm/fans", json={"name": "Ann"}, headers=auth)
        assert fan.status_code == 201, fan.text
        fan_id = fan.json()["fan"]["id"]

        sent = [
            await api.post(SEND, json={"recipientId": fan_id, "content": f"#{n}"}, headers=auth)
            for n in range(3)
        ]

    assert [response.status_code for response in sent] == [202, 202, 202]
    ids = [response.json()["messageId"] for response in sent]
    assert len(set(ids)) == 3
    rows = await container.pool.fetch(
        "SELECT message_id FROM outbox WHERE message_id = ANY($1::text[])", ids
    )
    assert sorted(row["message_id"] for row in rows) == sorted(ids)


async def test_the_served_app_keeps_its_start_up_objects_out_of_the_collectors_passes(
    database_url: str,
) -> None:
    async with served(database_url) as api:
        assert (await api.get("/health")).status_code == 200
        frozen = gc.get_freeze_count()
        threshold = gc.get_threshold()

    assert frozen > 0
    assert threshold[0] == 10_000
