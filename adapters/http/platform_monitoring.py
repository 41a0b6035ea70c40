"""The account's platform connections as monitoring components: GET /api/monitoring/platforms
(platform-neutral), and ``components.platforms`` on GET /api/monitoring/onlyfans.

A connection's health is what its last call to the platform found (a sync, or a failed one),
with the reason in plain words; nothing is called to answer this. On the OnlyFans check the
components are shown but do not change its overall status: that one says whether messages
leave, which a failing Patreon sync does not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency

from adapters.bootstrap import Container
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.postgres.api_keys import Principal
from application.permissions import Permission
from application.platform_connections import Health, Platform

PROBE_TIMEOUT = 1.0
ComponentStatus = Literal["healthy", "degraded", "unknown"]
_STATUS: dict[str, ComponentStatus] = {"ok": "healthy", "failing": "degraded", "unknown": "unknown"}


class PlatformComponentOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    platform: Platform
    connection_id: str
    status: ComponentStatus
    health: Health
    reason: str | None = None
    last_sync_at: datetime | None = None
    checked_at: datetime | None = None


class PlatformsHealthOut(msgspec.Struct, kw_only=True, rename="camel"):
    status: Literal["healthy", "degraded"]
    timestamp: datetime
    platforms: list[PlatformComponentOut]
    failing: list[str]


async def platform_components(container: Container, tenant: str) -> list[PlatformComponentOut]:
    """The tenant's connections as components; none if the database does not answer in time
    (the database's own component says so)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(PROBE_TIMEOUT):
            connections = await container.connections.list(tenant)
        return [
            PlatformComponentOut(
                platform=c.platform,
                connection_id=c.id,
                status=_STATUS[c.health],
                health=c.health,
                reason=c.health_reason if c.health == "failing" else None,
                last_sync_at=c.last_sync_at,
                checked_at=c.checked_at,
            )
            for c in connections
        ]
    return []


@get(
    "/api/monitoring/platforms",
    tags=["monitoring"],
    **requires(Permission.READ),
    **responses_for(params=False),
)
async def platforms_health(
    request: Request[Principal, Any, Any], container: NamedDependency[Container]
) -> PlatformsHealthOut:
    components = await platform_components(container, request.user.user_id)
    failing = [f"{c.platform}:{c.connection_id}" for c in components if c.status == "degraded"]
    return PlatformsHealthOut(
        status="degraded" if failing else "healthy",
        timestamp=datetime.now(UTC),
        platforms=components,
        failing=failing,
    )
