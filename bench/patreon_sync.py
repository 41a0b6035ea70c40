"""Patreon member sync: members per second, against the Patreon simulator over real HTTP.

    uv run python bench/patreon_sync.py                       # 100,000 members, pages of 1,000
    uv run python bench/patreon_sync.py --members 20000 --page-size 500
    DATABASE_URL=postgresql://... uv run python bench/patreon_sync.py

A fresh, migrated scratch database (embedded Postgres unless DATABASE_URL is set), the
simulator on a thread of its own, and the sync run in this process as `crm patreon sync` runs
it (adapters/patreon/sync.py): every member is a new fan. Then the same sync again (every
member found and skipped). Printed: members, pages, seconds, members/s, for both runs. The
machine is shared: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from _common import scratch_database

from adapters import bootstrap
from adapters.config import Settings
from adapters.crypto import generate_master_key
from adapters.patreon.simulator import PatreonSimulator, PatreonSimulatorConfig
from adapters.patreon.sync import sync_connection
from application.context import CommandContext
from application.platform_connections import Credentials


async def run(members: int, page_size: int) -> None:
    config = PatreonSimulatorConfig(members=members, access_token="bench-token")
    async with scratch_database() as (url, where), PatreonSimulator(config) as sim:
        settings = Settings.from_env(
            {}, database_url=url, master_key=generate_master_key(), platform_api_urls=(sim.url,)
        )
        container = await bootstrap.build(settings)
        try:
            tenant = f"bench-{uuid.uuid4().hex[:8]}"
            connection = await container.connections.add(
                tenant=tenant,
                platform="patreon",
                campaign_id=config.campaign_id,
                api_url=sim.url,
                credentials=Credentials(access_token="bench-token"),
            )
            ctx = CommandContext(tenant=tenant, actor="bench", correlation_id="bench")
            print(f"database: {where}; {members:,} members, pages of {page_size:,}")
            for label in ("first sync (all new)", "second sync (all unchanged)"):
                started = time.perf_counter()
                result = await sync_connection(container, connection, ctx, page_size=page_size)
                seconds = time.perf_counter() - started
                print(
                    f"{label}: {result.members:,} members, {result.pages} pages,"
                    f" inserted {result.inserted:,}, skipped {result.skipped:,},"
                    f" {seconds:.1f} s, {result.members / seconds:,.0f} members/s"
                )
        finally:
            await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.members, args.page_size))


if __name__ == "__main__":
    main()
