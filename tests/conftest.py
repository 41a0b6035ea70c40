"""Shared fixtures: a real Postgres (embedded unless DATABASE_URL is set), the app, API keys.

Tests use random tenants and ids so they never collide inside the shared session database;
tests that read the whole global log get a database of their own (``fresh_database_url``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from application.ports import Checkpoint
from projections.runner import ProjectionRunner
from tests.support.databases import TestServer
from tests.support.settings import settings_for

# `fresh` and `api`: a container and the app on a database of the test's own.
pytest_plugins = ["tests.support.fresh_app"]


@pytest.fixture(scope="session")
async def test_server() -> AsyncIterator[TestServer]:
    server = TestServer()
    server.start()
    try:
        await server.create_template()
        yield server
        await server.drop_all()
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def database_url(test_server: TestServer) -> str:
    return await test_server.clone()


@pytest.fixture
async def fresh_database_url(test_server: TestServer) -> str:
    return await test_server.clone()


@pytest.fixture(scope="session")
async def container(database_url: str) -> AsyncIterator[bootstrap.Container]:
    settings = settings_for(database_url, pool_min_size=1, pool_max_size=10)
    built = await bootstrap.build(settings)
    yield built
    await built.close()


@pytest.fixture
def tenant() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def api_key(container: bootstrap.Container, tenant: str) -> str:
    key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
    return key


@pytest.fixture(scope="session")
async def http(container: bootstrap.Container) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the test's own event loop (litestar's AsyncTestClient runs it on another)."""
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="session")
def sqs_endpoint_url() -> Iterator[str]:
    """moto's SQS server for the whole run (tests/support/moto.py); tests use fresh queue names."""
    # Imported here: moto and its web server load slowly, and most runs never need them.
    from tests.support.moto import moto_server

    with moto_server() as url:
        yield url


# --- shared by the API tests --------------------------------------------------------------


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
async def other_auth(container: bootstrap.Container) -> dict[str, str]:
    """A creator key for a second, unrelated tenant."""
    key, _ = await create_api_key(
        container.pool, user_id=f"user-{uuid.uuid4().hex[:12]}", role="creator"
    )
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def catch_up(container: bootstrap.Container) -> Callable[[], Awaitable[int]]:
    """Run every core projector until it has applied everything committed so far (no
    projector runs in the background in tests)."""

    async def run() -> int:
        # The newest event committed so far, in commit order. A projector reads only below
        # the oldest transaction running anywhere on the server, and other test databases
        # share it: catching up once may stop short while one of theirs is open.
        row = await container.pool.fetchrow(
            "SELECT transaction_id, position FROM events"
            " ORDER BY transaction_id DESC, position DESC LIMIT 1"
        )
        head = Checkpoint(row["transaction_id"], row["position"]) if row else Checkpoint()
        deadline = time.monotonic() + 60
        total = 0
        for projection in bootstrap.core_projections():
            runner = ProjectionRunner(container.projection_store, projection)
            total += await runner.catch_up()
            while await container.projection_store.checkpoint(runner.name) < head:
                assert time.monotonic() < deadline, f"{runner.name} never reached {head}"
                await asyncio.sleep(0.01)
                total += await runner.catch_up()
        return total

    return run


@pytest.fixture
def events_of_tenant(container: bootstrap.Container, tenant: str) -> Callable[[], Awaitable[int]]:
    """How many events the test's tenant has in the log (to show a refusal appended none)."""

    async def count() -> int:
        return int(
            await container.pool.fetchval(
                "SELECT count(*) FROM events WHERE metadata->>'tenant' = $1", tenant
            )
        )

    return count
