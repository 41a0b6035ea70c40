"""The litestar application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import msgspec
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from adapters import bootstrap
from adapters.bootstrap import Container
from adapters.config import Settings
from adapters.http.analytics import AnalyticsController
from adapters.http.audit import AuditController
from adapters.http.auth import ApiKeyMiddleware, KeyCache
from adapters.http.boundary import BoundedRequest, reject_nul_middleware
from adapters.http.campaigns import BulkMessagesController, CampaignsController
from adapters.http.churn import ChurnController
from adapters.http.context import record_writes
from adapters.http.conversations import ConversationsController, CrmMessagesController
from adapters.http.correlation import correlation_middleware
from adapters.http.dlq import DeadLetterController
from adapters.http.docs import SCHEMA_PATH, render_plugins, swagger_assets
from adapters.http.fans import FansController
from adapters.http.imports import ImportsController
from adapters.http.inbox import inbox_asset, inbox_page
from adapters.http.live import create_ticket, live_events, live_socket
from adapters.http.messages import MessagesController
from adapters.http.monitoring import onlyfans_health, probe_database, prometheus_metrics
from adapters.http.openapi import ClosedStructs, responses_for
from adapters.http.patreon_webhooks import receive_patreon_webhook
from adapters.http.people import PeopleController
from adapters.http.permissions import check_declared, public
from adapters.http.platform_connections import PlatformConnectionsController
from adapters.http.platform_monitoring import platforms_health
from adapters.http.platforms import PlatformsController
from adapters.http.problems import EXCEPTION_HANDLERS, Unavailable
from adapters.http.scripts import ScriptsController, SensitiveWordsController
from adapters.http.sequences import SequencesController
from adapters.http.shift_messages import ShiftMessagesController
from adapters.http.shifts import ShiftsController
from adapters.http.suggestions import SuggestionsController
from adapters.http.transaction_imports import TransactionImportsController
from adapters.http.webhooks import receive_webhook
from adapters.http.workspace import WorkspaceController, accept_invite
from adapters.live.hub import live_hub
from adapters.tracing import tracing_middleware
from application.messages import RecipientCache

# Webhooks authenticate by their HMAC signature instead of an API key; /metrics is for the
# scraper (public, or CRM_METRICS_TOKEN: adapters/http/monitoring.py). These are regular
# expressions searched anywhere in the path: anchored, or /api/campaigns/1/metrics (or an
# audit stream named "schema-1") would match.
PUBLIC_PATHS = [
    "^/schema",
    "^/health$",
    "^/api/onlyfans/webhooks$",
    # Patreon's: the connection in the path, its signature the credential.
    "^/api/patreon/webhooks/[^/]+$",
    "^/metrics$",
    "^/api/workspace/invites/accept$",
    # The live stream authenticates itself: a ticket, or a key (adapters/http/live.py).
    "^/api/live$",
    "^/api/live/events$",
    # The inbox page and its files hold no data: the page asks for a key (adapters/http/inbox.py).
    "^/inbox$",
    "^/inbox/assets/[a-z.]+$",
]


class HealthStatus(msgspec.Struct):
    status: Literal["ok"]


@get(
    "/health",
    tags=["monitoring"],
    **public(),
    **responses_for(
        public=True, params=False, also=(503,), why={503: "The database does not answer"}
    ),
)
async def health(container: NamedDependency[Container]) -> HealthStatus:
    """Liveness: the API answers and its database too. The probe records its round trip
    (onlyfans.db.latency), so the load balancer's checks keep that metric sampled."""
    if (await probe_database(container)).status == "unhealthy":
        raise Unavailable("the database does not answer")
    return HealthStatus(status="ok")


async def _close_live_hub(app: Litestar) -> None:
    hub = getattr(app.state, "live_hub", None)
    if hub is not None:
        await hub.close()


def settle_garbage_collector() -> None:
    """Keep the cyclic garbage collector off the request path. Under load its full passes
    walk everything start-up built (the app, its routes, OpenTelemetry, the pool) while every
    request in flight waits. Start-up's objects are frozen out of its reach, and the youngest
    generation is collected every 10,000 allocations rather than 700, so that the objects of
    requests in flight die young instead of being promoted towards full passes (figures:
    bench/MEASUREMENTS.md, "Garbage collection in the API")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_app(*, container: Container | None = None, settings: Settings | None = None) -> Litestar:
    """Build the app around an existing container (tests, `crm dev`), or around one it builds
    from ``settings`` at start-up and closes at shutdown (`crm serve`)."""
    if container is None and settings is None:
        raise ValueError("give a container or settings")
    max_body = (container.settings if container else settings).max_body_bytes  # type: ignore[union-attr]

    @asynccontextmanager
    async def build_and_close(app: Litestar) -> AsyncIterator[None]:
        app.state.container = await bootstrap.build(settings)  # type: ignore[arg-type]
        app.state.live_hub = live_hub(app.state.container)
        app.state.key_cache = KeyCache(app.state.container.pool, app.state.container.events)
        app.state.recipients = RecipientCache()
        settle_garbage_collector()
        try:
            yield
        finally:
            await app.state.live_hub.close()
            await app.state.container.close()

    # Given a container, the app is ready at once (no lifespan needed, so any ASGI client can
    # drive it); otherwise it builds its own at start-up.
    state = (
        State(
            {
                "container": container,
                "key_cache": KeyCache(container.pool, container.events),
                "recipients": RecipientCache(),
                "live_hub": live_hub(container),
            }
        )
        if container
        else State()
    )
    lifespan = [] if container else [build_and_close]

    def provide_container(state: State) -> Container:
        return state.container

    app = Litestar(
        route_handlers=[
            FansController,
            PeopleController,
            MessagesController,
            ConversationsController,
            CrmMessagesController,
            SuggestionsController,
            DeadLetterController,
            AnalyticsController,
            ChurnController,
            BulkMessagesController,
            CampaignsController,
            AuditController,
            ImportsController,
            TransactionImportsController,
            ScriptsController,
            SensitiveWordsController,
            SequencesController,
            receive_webhook,
            receive_patreon_webhook,
            PlatformConnectionsController,
            WorkspaceController,
            ShiftsController,
            ShiftMessagesController,
            PlatformsController,
            accept_invite,
            create_ticket,
            live_events,
            live_socket,
            health,
            onlyfans_health,
            platforms_health,
            prometheus_metrics,
            swagger_assets(),
            inbox_page,
            inbox_asset,
        ],
        dependencies={"container": Provide(provide_container, sync_to_thread=False)},
        middleware=[
            # Outermost: the request's span is current for everything within, its log lines too.
            tracing_middleware,
            correlation_middleware,
            DefineMiddleware(ApiKeyMiddleware, exclude=PUBLIC_PATHS),
            reject_nul_middleware,
            # Within the key check: it needs the caller's key, from scope["user"].
            record_writes,
        ],
        request_class=BoundedRequest,
        plugins=[ClosedStructs()],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
        # The live hub's tail stops with the app (around a given container too).
        on_shutdown=[_close_live_hub],
        state=state,
        request_max_body_size=max_body,
        # Logging is configured once per process by adapters.observability, not by litestar.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="fancrm",
            version="0.1.0",
            path=SCHEMA_PATH,
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={"apiKey": SecurityScheme(type="http", scheme="bearer")}
            ),
            security=[{"apiKey": []}],
        ),
    )
    check_declared(app)
    return app
