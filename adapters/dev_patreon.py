"""`crm dev`'s Patreon: the API v2 simulator on a free port, which connections may name as
their apiUrl (it is added to CRM_PLATFORM_API_URLS for this run only)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import structlog

from adapters.config import Settings
from adapters.patreon.simulator import PatreonSimulator, PatreonSimulatorConfig

log = structlog.get_logger(__name__)


async def start_patreon_simulator(
    settings: Settings, host: str, on_stop: Callable[[Callable[[], None]], None]
) -> Settings:
    """Start the simulator (stopped with the stack); ``settings`` that allow its URL."""
    config = PatreonSimulatorConfig()
    simulator = PatreonSimulator(config, host=host)
    await asyncio.to_thread(simulator.start)
    on_stop(simulator.stop)
    log.info(
        "patreon simulator",
        apiUrl=simulator.url,
        campaignId=config.campaign_id,
        members=config.members,
        hint="POST /api/platforms/connections with this apiUrl, campaignId and the"
        " simulator's dev token (adapters/patreon/simulator.py)",
    )
    return msgspec.structs.replace(
        settings, platform_api_urls=(*settings.platform_api_urls, simulator.url)
    )
