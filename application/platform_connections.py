"""An account's connections to its platforms: the credentials a member sync or a webhook needs.

Credentials go in and never come out through the API: the store seals them with the master
key, answers only what a connection is (platform, id, campaign, health), and hands the
credentials to the adapters that call the platform. They are kept out of the event log
altogether: the log is replicated into read models, exports and audits, and a token that got
there could not be taken back (erasure destroys personal data keys, not this).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec

Platform = Literal["onlyfans", "fansly", "patreon"]
Health = Literal["unknown", "ok", "failing"]
# An OAuth bearer token or a webhook secret is far shorter; a longer value is a mistake.
MAX_SECRET = 2_000
MAX_CAMPAIGN_ID = 100


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    webhook_secret: str | None = None

    def __repr__(self) -> str:
        # A repr ends up in tracebacks and log lines: it must not carry the secrets.
        return "Credentials(<redacted>)"

    __str__ = __repr__


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant: str
    platform: Platform
    campaign_id: str | None
    api_url: str | None
    created_at: datetime
    has_webhook_secret: bool = False
    last_sync_at: datetime | None = None
    health: Health = "unknown"
    health_reason: str | None = None
    checked_at: datetime | None = None


class ConnectionStore(Protocol):
    async def add(
        self,
        *,
        tenant: str,
        platform: Platform,
        campaign_id: str | None,
        api_url: str | None,
        credentials: Credentials,
    ) -> Connection: ...

    async def list(self, tenant: str) -> list[Connection]: ...

    async def get(self, tenant: str, connection_id: str) -> Connection | None:
        """The tenant's connection; None for an unknown id or another tenant's."""
        ...

    async def by_id(self, connection_id: str) -> tuple[Connection, Credentials] | None:
        """Any tenant's connection and its credentials: for a webhook, which names its
        connection in its URL and proves itself with the connection's secret."""
        ...

    async def credentials(self, connection: Connection) -> Credentials: ...

    async def remove(self, tenant: str, connection_id: str) -> bool: ...

    async def record_health(
        self, connection_id: str, *, ok: bool, reason: str | None, synced: bool = False
    ) -> None:
        """How the last call to the platform went (and, if ``synced``, that a sync ended)."""
        ...
