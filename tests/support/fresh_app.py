"""A container on a database of the test's own, the app on it, and a creator's key: for tests
that read or rebuild the whole log, where another test's events would be in the way.
Registered for every test by tests/conftest.py (a module defining its own ``fresh`` keeps it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from tests.support.settings import settings_for


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
async def api(fresh: bootstrap.Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container=fresh))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def auth_for(container: bootstrap.Container, tenant: str) -> dict[str, str]:
    """Headers with a new creator key of ``tenant``."""
    key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
    return {"Authorization": f"Bearer {key}"}
