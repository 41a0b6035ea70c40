"""GET /api/platforms: what each platform's API lets the CRM do, and how fast it sends there.

The capabilities are the domain's matrix (domain/platforms.py, sources in README.md); the rate
limits and whether a gateway is configured are this deployment's settings.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency

from adapters.bootstrap import Container
from adapters.config import Settings
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.postgres.api_keys import Principal
from application.permissions import Permission
from domain.platforms import CAPABILITIES

Deps = NamedDependency[Container]


class PriceRangeOut(msgspec.Struct, kw_only=True, rename="camel"):
    min_cents: int
    max_cents: int


class CapabilitiesOut(msgspec.Struct, kw_only=True, rename="camel"):
    direct_messages: bool
    # None: the platform's API has no paid (pay-per-view) messages.
    paid_messages: PriceRangeOut | None
    media: bool
    read_receipts: bool
    purchases: bool
    fan_sync: bool
    webhooks: bool


class RateLimitOut(msgspec.Struct, kw_only=True, rename="camel"):
    """The sender's limit per creator account on this platform (RATE_LIMITS overrides it
    per account on OnlyFans)."""

    per_second: float
    burst: int


class PlatformOut(msgspec.Struct, kw_only=True, rename="camel"):
    platform: str
    capabilities: CapabilitiesOut
    # Whether this deployment has a gateway for it: a message to one without is refused (422).
    configured: bool
    # None where nothing is sent (no direct messages).
    rate_limit: RateLimitOut | None


class PlatformsOut(msgspec.Struct, kw_only=True, rename="camel"):
    platforms: list[PlatformOut]


def platforms_of(settings: Settings) -> PlatformsOut:
    limits = {
        "onlyfans": RateLimitOut(
            per_second=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        ),
        "fansly": RateLimitOut(
            per_second=settings.fansly_rate_limit_per_second,
            burst=settings.fansly_rate_limit_burst,
        ),
    }
    return PlatformsOut(
        platforms=[
            PlatformOut(
                platform=name,
                capabilities=msgspec.convert(capabilities, CapabilitiesOut, from_attributes=True),
                configured=name in settings.message_platforms,
                rate_limit=limits.get(name) if capabilities.direct_messages else None,
            )
            for name, capabilities in CAPABILITIES.items()
        ]
    )


class PlatformsController(Controller):
    path = "/api/platforms"
    tags = ["platforms"]

    @get(**requires(Permission.READ), **responses_for(params=False))
    async def list_platforms(
        self, request: Request[Principal, Any, Any], container: Deps
    ) -> PlatformsOut:
        """Each platform's capabilities (what its API lets a CRM do), whether this deployment
        has a gateway for it, and the sender's rate limit there per creator account."""
        return platforms_of(container.settings)
