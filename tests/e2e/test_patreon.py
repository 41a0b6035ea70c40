"""Patreon end to end over real sockets: the API served by uvicorn as `crm serve` runs it,
the Patreon simulator serving members and posting signed webhooks to it."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.onlyfans.server import BackgroundServer
from adapters.patreon.simulator import PatreonSimulator, PatreonSimulatorConfig
from projections.fans import FansProjection
from tests.support.catching_up import catch_up_to_head
from tests.support.fresh_app import auth_for
from tests.support.settings import settings_for

TOKEN = "e2e-token-" + uuid.uuid4().hex
SECRET = "e2e-secret-" + uuid.uuid4().hex


@pytest.fixture
async def served(
    fresh_database_url: str, fresh: bootstrap.Container
) -> AsyncIterator[tuple[str, PatreonSimulator]]:
    threshold = gc.get_threshold()
    config = PatreonSimulatorConfig(access_token=TOKEN, members=240, page_size=100)
    async with PatreonSimulator(config) as sim:
        settings = settings_for(
            fresh_database_url, platform_api_urls=(sim.url,), pool_min_size=1, pool_max_size=4
        )
        server = BackgroundServer(create_app(settings=settings))
        await asyncio.to_thread(server.start)
        try:
            yield server.url, sim
        finally:
            await asyncio.to_thread(server.stop)
            # What the served app's start-up did to this process's collector, undone.
            gc.unfreeze()
            gc.set_threshold(*threshold)


async def test_a_patreon_account_connects_syncs_and_receives_its_webhooks_over_http(
    served: tuple[str, PatreonSimulator], fresh: bootstrap.Container
) -> None:
    api_url, sim = served
    auth = await auth_for(fresh, "patreon-creator")
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        made = await http.post(
            "/api/platforms/connections",
            json={
                "platform": "patreon",
                "accessToken": TOKEN,
                "campaignId": sim.state.config.campaign_id,
                "webhookSecret": SECRET,
                "apiUrl": sim.url,
            },
            headers=auth,
        )
        assert made.status_code == 201, made.text
        synced = await http.post(
            f"/api/platforms/connections/{made.json()['id']}/sync", headers=auth
        )
        assert synced.status_code == 200, synced.text
        assert synced.json()["members"] == 240
        assert synced.json()["inserted"] == 240

    hook = f"{api_url}{made.json()['webhookPath']}"
    pledged = await sim.post_webhook(hook, "members:pledge:create", 3, SECRET)
    assert pledged.status_code == 200, pledged.text
    assert pledged.json()["revenueCents"] > 0
    replayed = await sim.post_webhook(hook, "members:pledge:create", 3, SECRET)
    assert replayed.status_code == 409
    forged = await sim.post_webhook(hook, "members:pledge:create", 3, "not-the-secret")
    assert forged.status_code == 401
    # `crm serve` runs no projector: the worker's part, played here.
    await catch_up_to_head(fresh, [FansProjection()])
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:
        fan = await http.get(f"/api/crm/fans/{pledged.json()['fanId']}", headers=auth)
    # The fan the sync made for member 3 (its Patreon user id), not a new one.
    assert fan.status_code == 200, fan.text
    assert fan.json()["fan"]["platformId"] == sim.state.user_id(3)
    assert fan.json()["fan"]["platform"] == "patreon"
