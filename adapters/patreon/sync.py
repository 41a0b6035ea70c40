"""A connection's member sync, wired: the Patreon client on the connection's credentials, the
application's sync, and the connection's health recorded from how it went (the reason a
creator reads in GET /api/platforms/connections, never the token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from adapters.bootstrap import Container
from adapters.patreon.client import DEFAULT_PAGE_SIZE, PatreonClient
from application.context import CommandContext
from application.patreon import PlatformCallFailed
from application.patreon_sync import Checkpoint, SyncResult, sync_members
from application.platform_connections import Connection

TIMEOUT = 30.0


class NotSyncable(Exception):
    """The connection cannot be synced as it is (422): not Patreon, or no campaign."""


async def sync_connection(
    container: Container,
    connection: Connection,
    ctx: CommandContext,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    on_page: Callable[[Checkpoint], Awaitable[None]] | None = None,
) -> SyncResult:
    if connection.platform != "patreon":
        raise NotSyncable(f"a {connection.platform} connection has no member sync")
    if not connection.campaign_id:
        raise NotSyncable("the connection names no campaignId")
    credentials = await container.connections.credentials(connection)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        client = PatreonClient(
            http,
            base_url=connection.api_url or container.settings.patreon_api_url,
            campaign_id=connection.campaign_id,
            access_token=credentials.access_token,
            page_size=page_size,
        )
        try:
            result = await sync_members(
                connection.id,
                ctx,
                api=client,
                events=container.events,
                imports=container.imports,
                checkpoints=container.sync_checkpoints,
                on_page=on_page,
            )
        except PlatformCallFailed as failure:
            await container.connections.record_health(
                connection.id, ok=False, reason=failure.reason
            )
            raise
    await container.connections.record_health(connection.id, ok=True, reason=None, synced=True)
    return result
