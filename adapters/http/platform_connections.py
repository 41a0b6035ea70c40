"""/api/platforms/connections: an account's platform credentials, stored sealed, listed with
their health, removed; and a Patreon connection's member sync.

The credentials are write-only: no answer holds them (not even masked), nothing logs them
(the body is read here and handed to the store, never bound to the log context), and they
stay out of the event log (application/platform_connections.py says why). An ``apiUrl``
other than the platform's own is accepted only if the deployment lists it in
CRM_PLATFORM_API_URLS: the server sends the token there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody

from adapters.bootstrap import Container
from adapters.http.context import command_context
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.http.schemas import decode_strictly
from adapters.patreon.sync import NotSyncable, sync_connection
from adapters.postgres.api_keys import Principal
from application.errors import NotFound
from application.patreon import PlatformCallFailed
from application.permissions import Permission
from application.platform_connections import (
    MAX_CAMPAIGN_ID,
    MAX_SECRET,
    Connection,
    Credentials,
    Health,
    Platform,
)
from domain.errors import InvalidValue

Deps = NamedDependency[Container]
_PRINTABLE = r"^[\x21-\x7e]+$"
Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SECRET, pattern=_PRINTABLE)]
CampaignId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_CAMPAIGN_ID, pattern=_PRINTABLE)
]
ApiUrl = Annotated[str, msgspec.Meta(max_length=300, pattern=r"^https?://[\x21-\x7e]+$")]
WEBHOOK_PATH = "/api/patreon/webhooks/{connection_id}"


class ConnectBody(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    platform: Platform
    access_token: Secret
    campaign_id: CampaignId | None = None
    webhook_secret: Secret | None = None
    api_url: ApiUrl | None = None


class ConnectionOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    id: str
    platform: Platform
    created_at: datetime
    health: Health
    has_webhook_secret: bool
    campaign_id: str | None = None
    api_url: str | None = None
    last_sync_at: datetime | None = None
    health_reason: str | None = None
    checked_at: datetime | None = None
    # Where the platform is to post its webhooks (Patreon: set it as the webhook's URI).
    webhook_path: str | None = None


class ConnectionListOut(msgspec.Struct, kw_only=True):
    connections: list[ConnectionOut]


class SyncOut(msgspec.Struct, kw_only=True, rename="camel"):
    connection_id: str
    job_id: str
    pages: int
    members: int
    inserted: int
    updated: int
    skipped: int
    errors: int
    resumed: bool


class PlatformFailed(HTTPException):
    """The platform did not answer as it should (502): what it said is in the detail."""

    status_code = 502


def _out(connection: Connection) -> ConnectionOut:
    return ConnectionOut(
        id=connection.id,
        platform=connection.platform,
        created_at=connection.created_at,
        health=connection.health,
        has_webhook_secret=connection.has_webhook_secret,
        campaign_id=connection.campaign_id,
        api_url=connection.api_url,
        last_sync_at=connection.last_sync_at,
        health_reason=connection.health_reason,
        checked_at=connection.checked_at,
        webhook_path=(
            WEBHOOK_PATH.format(connection_id=connection.id)
            if connection.platform == "patreon"
            else None
        ),
    )


class PlatformConnectionsController(Controller):
    path = "/api/platforms/connections"
    tags = ["platforms"]

    @post(
        **requires(Permission.WRITE),
        **responses_for(
            body=True,
            idempotent=True,
            why={422: "No campaignId for Patreon, or an apiUrl not allowed"},
        ),
    )
    async def connect(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[ConnectBody]
    ) -> Response[ConnectionOut]:
        body = decode_strictly(await request.body(), ConnectBody)
        if body.platform == "patreon" and body.campaign_id is None:
            raise InvalidValue("campaign_id", "a Patreon connection names its campaign")
        api_url = body.api_url.rstrip("/") if body.api_url else None
        if api_url is not None and api_url not in _allowed_urls(container, body.platform):
            raise InvalidValue("api_url", "is not an API URL this deployment allows")
        tenant = request.user.user_id

        async def run() -> Response[Any]:
            connection = await container.connections.add(
                tenant=tenant,
                platform=body.platform,
                campaign_id=body.campaign_id,
                api_url=api_url,
                credentials=Credentials(
                    access_token=body.access_token, webhook_secret=body.webhook_secret
                ),
            )
            out = _out(connection)
            return Response(out, status_code=201)

        # A retried request (same Idempotency-Key) answers the first connection, not a second.
        return await replay_or_run(container.idempotency, request, tenant, run)

    @get(**requires(Permission.READ), **responses_for(params=False))
    async def list_connections(
        self, request: Request[Principal, Any, Any], container: Deps
    ) -> ConnectionListOut:
        connections = await container.connections.list(request.user.user_id)
        return ConnectionListOut(connections=[_out(connection) for connection in connections])

    @delete("/{connection_id:str}", **requires(Permission.WRITE), **responses_for(found=True))
    async def disconnect(
        self, request: Request[Principal, Any, Any], container: Deps, connection_id: FromPath[str]
    ) -> None:
        if not await container.connections.remove(request.user.user_id, connection_id):
            raise NotFound(f"connection {connection_id}")

    @post(
        "/{connection_id:str}/sync",
        status_code=200,
        **requires(Permission.IMPORT),
        **responses_for(
            found=True,
            idempotent=True,
            also=(502,),
            why={
                422: "The connection has no member sync (not Patreon, or no campaign)",
                502: "The platform failed (its reason in the detail); asked again, the sync"
                " resumes after the last page it committed",
            },
        ),
    )
    async def sync(
        self, request: Request[Principal, Any, Any], container: Deps, connection_id: FromPath[str]
    ) -> Response[SyncOut]:
        connection = await container.connections.get(request.user.user_id, connection_id)
        if connection is None:
            raise NotFound(f"connection {connection_id}")
        ctx = command_context(request)

        async def run() -> Response[Any]:
            assert connection is not None
            try:
                result = await sync_connection(container, connection, ctx)
            except NotSyncable as error:
                raise InvalidValue("platform", str(error)) from None
            except PlatformCallFailed as failure:
                raise PlatformFailed(
                    f"{failure.reason}; the sync resumes from its last committed page"
                ) from None
            out = SyncOut(connection_id=connection.id, **msgspec.structs.asdict(result))
            return Response(out, status_code=200)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)


def _allowed_urls(container: Container, platform: str) -> set[str]:
    settings = container.settings
    allowed = set(settings.platform_api_urls)
    if platform == "patreon":
        allowed.add(settings.patreon_api_url.rstrip("/"))
    return allowed
