"""The smallest round trip: create a fan, then read it back with ``minPosition``.

Each test gets a database of its own with no projector running in the background, so when the
fans view has applied the write is decided by the test alone: a 503 before the projector runs,
the fan after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from projections.fans import FansProjection
from projections.runner import ProjectionRunner
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def alone(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    # A short wait: the 503 below is certain (nothing applies the log), so no need to sit
    # through the default two seconds.
    container = await bootstrap.build(
        settings_for(fresh_database_url, read_your_writes_timeout=0.2)
    )
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
async def client(alone: bootstrap.Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container=alone))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        key, _ = await create_api_key(alone.pool, user_id="smoke", role="creator")
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


async def create_ann(client: httpx.AsyncClient) -> tuple[int, int]:
    created = await client.post("/api/crm/fans", json={"name": "Ann", "valueCents": 5})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["fan"]["name"] == "Ann"
    return body["fan"]["id"], body["position"]


async def project_fans_through(container: bootstrap.Container, position: int) -> None:
    """Run the fans projector until it has applied ``position``. A pass may stop short of it
    while a transaction elsewhere on the server is still open (readers stay below the oldest
    one, so as never to skip a late commit): run it again until it gets there."""
    runner = ProjectionRunner(container.projection_store, FansProjection())
    async with asyncio.timeout(30):
        while not await container.projection_store.has_applied("fans", position):
            if not await runner.catch_up():
                await container.projection_store.wait_for_events(0.05)


async def test_creates_a_fan_and_reads_it_back_at_its_position_once_projected(
    alone: bootstrap.Container, client: httpx.AsyncClient
) -> None:
    fan_id, position = await create_ann(client)
    await project_fans_through(alone, position)
    got = await client.get(f"/api/crm/fans/{fan_id}", params={"minPosition": position})
    assert got.status_code == 200, got.text
    assert got.json()["fan"]["name"] == "Ann"
    assert got.json()["fan"]["valueCents"] == 5


async def test_a_read_at_a_position_the_view_has_not_reached_answers_503_then_the_fan(
    alone: bootstrap.Container, client: httpx.AsyncClient
) -> None:
    fan_id, position = await create_ann(client)
    lagging = await client.get(f"/api/crm/fans/{fan_id}", params={"minPosition": position})
    assert lagging.status_code == 503, lagging.text
    assert lagging.headers["content-type"].startswith("application/problem+json")
    assert lagging.headers["retry-after"] == "1"
    assert lagging.json()["type"].endswith("projection-lagging")

    await project_fans_through(alone, position)
    got = await client.get(f"/api/crm/fans/{fan_id}", params={"minPosition": position})
    assert got.status_code == 200, got.text
    assert got.json()["fan"]["name"] == "Ann"
