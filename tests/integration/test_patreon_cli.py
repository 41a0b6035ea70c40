"""`crm patreon sync --user ID`, run as a command: each page on stderr, the summary on stdout."""

from __future__ import annotations

import asyncio
import os
import sys

import msgspec

from adapters import bootstrap
from adapters.patreon.simulator import PatreonSimulator, PatreonSimulatorConfig
from application.platform_connections import Credentials
from tests.support.settings import TEST_MASTER_KEY

TOKEN = "cli-token"


async def test_crm_patreon_sync_syncs_the_users_connections_and_prints_a_summary(
    fresh: bootstrap.Container, fresh_database_url: str
) -> None:
    config = PatreonSimulatorConfig(access_token=TOKEN, members=45)
    async with PatreonSimulator(config) as sim:
        connection = await fresh.connections.add(
            tenant="cli-creator",
            platform="patreon",
            campaign_id=config.campaign_id,
            api_url=sim.url,
            credentials=Credentials(access_token=TOKEN),
        )
        env = {**os.environ, "DATABASE_URL": fresh_database_url, "CRM_MASTER_KEY": TEST_MASTER_KEY}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from adapters.cli import main; main()",
            *("patreon", "sync", "--user", "cli-creator", "--page-size", "20"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    summary = msgspec.json.decode(out.splitlines()[-1])
    assert summary["connectionId"] == connection.id
    assert (summary["members"], summary["pages"], summary["inserted"]) == (45, 3, 45)
    assert "page 3" in err.decode()
    assert TOKEN not in (out + err).decode()
