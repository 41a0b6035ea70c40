"""GET /api/monitoring/onlyfans (the reference's health check of the sending system) and
GET /metrics (Prometheus text).

Each component is probed at once, each probe bounded by ``PROBE_TIMEOUT`` so that a dead
Redis or SQS answers "unhealthy" within a second instead of hanging the check.

What decides the overall status:

- database down: **unhealthy** (503). No command, query or sender works without it.
- queue (SQS, or the Postgres queue) down: **unhealthy** (503). Messages pile up in the outbox
  and the relay records them failed after its last retry: sending is down.
- rate limiter's Redis down while the limiter is enabled: **unhealthy** (503). Nothing is lost
  or refused, but nothing is sent either: the sender takes no message until the limiter
  answers again (it could not tell how fast an account may go), and the messages wait on the
  queue without a receive counted against them. RATE_LIMITER_ENABLED=false is a supported way
  to run without it.
- a projector lagging more than ``PROJECTION_LAG_SECONDS`` or stuck on an error: **degraded**
  (200). Writes go on; reads are stale.
- the guide's three thresholds (its Troubleshooting section), each configurable: queue depth
  over ``CRM_QUEUE_DEPTH_THRESHOLD`` (1000), dead letters over ``CRM_DLQ_THRESHOLD`` (10),
  database latency over ``CRM_DB_LATENCY_THRESHOLD_MS`` (100 ms): **degraded** (200), with the
  reason and the guide's advice on the component, and every crossed threshold in ``alerts``.
  Sending goes on: these say it goes badly, not that it stopped.

``failing`` names the components that are not healthy; ``sending`` says whether messages are
leaving, and if not, why.

Who sees what: every component that is not healthy has a ``reason`` in plain words. The
internal text behind it (exception messages, hosts, socket paths, projectors' errors) is
``error``, shown only to keys with Permission.OPERATE: to a creator it would map the
deployment and leak other accounts' troubles.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency

from adapters import bootstrap, metrics
from adapters.bootstrap import Container
from adapters.http.openapi import responses_for
from adapters.http.permissions import public, requires
from adapters.http.platform_monitoring import PlatformComponentOut, platform_components
from adapters.postgres.api_keys import Principal
from adapters.postgres.campaign_stalls import stalled_campaigns
from adapters.postgres.projection_status import projector_status
from application.errors import Unauthorized
from application.permissions import Permission
from application.queue import QUEUES

PROBE_TIMEOUT = 1.0  # seconds, per component
PROJECTION_LAG_SECONDS = 60.0

Status = Literal["healthy", "degraded", "unhealthy"]
T = TypeVar("T")


class _Out(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    pass


class DatabaseOut(_Out):
    status: Status
    latency_ms: float | None = None
    reason: str | None = None
    advice: str | None = None
    error: str | None = None


class QueueOut(_Out):
    status: Status
    backend: str  # "sqs" or "postgres"
    queue_depth: int | None = None
    dlq_count: int | None = None
    reason: str | None = None
    advice: str | None = None
    error: str | None = None


class RateLimiterOut(_Out):
    status: Status
    enabled: bool
    latency_ms: float | None = None
    reason: str | None = None
    error: str | None = None


class ProjectorOut(_Out):
    name: str
    position: int
    lag_events: int
    lag_seconds: float
    last_error: str | None = None


class ProjectionsOut(_Out):
    status: Status
    max_lag_events: int | None = None
    max_lag_seconds: float | None = None
    projectors: list[ProjectorOut] = []
    reason: str | None = None
    error: str | None = None


class ComponentsOut(_Out):
    database: DatabaseOut
    sqs: QueueOut  # the reference's name; the Postgres queue answers here too
    rate_limiter: RateLimiterOut
    projections: ProjectionsOut
    # One per platform connection of the account (adapters/http/platform_monitoring.py).
    platforms: list[PlatformComponentOut] = []


class SendingOut(_Out):
    status: Literal["active", "paused"]
    reason: str | None = None


class AlertOut(_Out):
    """A threshold of the guide crossed: what was measured, the limit, why, what to do."""

    metric: Literal["queueDepth", "dlqCount", "dbLatencyMs"]
    value: float
    threshold: float
    reason: str
    advice: str


class HealthOut(_Out):
    status: Status
    timestamp: datetime
    components: ComponentsOut
    sending: SendingOut
    # The database's round trip as measured by this check (also components.database.latencyMs).
    db_latency_ms: float | None = None
    failing: list[str] = []
    alerts: list[AlertOut] = []


# What a key without Permission.OPERATE reads for a component that is down.
REASONS = {
    "database": "the database does not answer",
    "sqs": "the message queue does not answer",
    "rateLimiter": "the rate limiter does not answer",
    "projections": "some read models are behind or failing: reads may be stale",
}
PROJECTOR_ERROR = "failing; operators see the error"

# The guide's Troubleshooting section: its symptom, cause and solution, per threshold.
THRESHOLD_REASONS = {
    "queueDepth": "the queue is deeper than its threshold: the sender is too slow or the"
    " OnlyFans rate limit is reached",
    "dlqCount": "more dead-lettered messages than the threshold: messages fail after all"
    " their retries",
    "dbLatencyMs": "the database answers slower than its threshold: it is overloaded or a"
    " query is inefficient",
}
THRESHOLD_ADVICE = {
    "queueDepth": "check the sender's (Lambda's) logs; raise its concurrency if needed",
    "dlqCount": "inspect the dead-lettered messages (GET /api/onlyfans/dlq) and check the"
    " OnlyFans API's status; redrive them once fixed (POST /api/onlyfans/dlq/redrive)",
    "dbLatencyMs": "check slow queries; add indexes if needed",
}


@get(
    "/api/monitoring/onlyfans",
    tags=["monitoring"],
    **requires(Permission.READ),
    **responses_for(params=False, success={503: HealthOut}),
)
async def onlyfans_health(
    request: Request[Principal, Any, Any], container: NamedDependency[Container]
) -> Response[HealthOut]:
    health = await check(container)
    if not request.user.may(Permission.OPERATE):
        health = without_internals(health)
    platforms = await platform_components(container, request.user.user_id)
    health = msgspec.structs.replace(
        health, components=msgspec.structs.replace(health.components, platforms=platforms)
    )
    return Response(health, status_code=503 if health.status == "unhealthy" else 200)


@get("/metrics", include_in_schema=False, **public())
async def prometheus_metrics(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Response[bytes]:
    """Public, unless CRM_METRICS_TOKEN is set: then it wants ``Authorization: Bearer <it>``
    (Prometheus's ``authorization`` scrape setting). Queue gauges are refreshed per scrape."""
    token = container.settings.metrics_token
    if token and not _token_matches(request.headers.get("authorization", ""), token):
        raise Unauthorized("/metrics wants 'Authorization: Bearer <CRM_METRICS_TOKEN>'")
    await probe_queue(container)  # updates onlyfans.queue.depth and onlyfans.dlq.count
    await probe_campaign_stalls(container)  # updates onlyfans.bulk.stalled_campaigns
    body, content_type = metrics.prometheus_text()
    return Response(body, media_type=content_type)


def _token_matches(header: str, token: str) -> bool:
    # Constant time: how long a comparison takes must not tell how much of a guess was right.
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


async def check(container: Container) -> HealthOut:
    database, queue, limiter, projections = await asyncio.gather(
        probe_database(container),
        probe_queue(container),
        probe_rate_limiter(container),
        probe_projections(container),
    )
    settings = container.settings
    alerts = [
        _alert(metric, value, threshold)
        for metric, value, threshold in (
            ("queueDepth", queue.queue_depth, settings.queue_depth_threshold),
            ("dlqCount", queue.dlq_count, settings.dlq_threshold),
            ("dbLatencyMs", database.latency_ms, settings.db_latency_threshold_ms),
        )
        if value is not None and value > threshold
    ]
    database = _degraded(database, [a for a in alerts if a.metric == "dbLatencyMs"])
    queue = _degraded(queue, [a for a in alerts if a.metric != "dbLatencyMs"])
    components = ComponentsOut(
        database=database, sqs=queue, rate_limiter=limiter, projections=projections
    )
    failing = [
        name
        for name, component in (
            ("database", database),
            ("sqs", queue),
            ("rateLimiter", limiter),
            ("projections", projections),
        )
        if component.status != "healthy"
    ]
    return HealthOut(
        status=overall(database.status, queue.status, limiter.status, projections.status),
        timestamp=datetime.now(UTC),
        components=components,
        sending=sending(components),
        db_latency_ms=database.latency_ms,
        failing=failing,
        alerts=alerts,
    )


def _alert(metric: Any, value: float, threshold: float) -> AlertOut:
    return AlertOut(
        metric=metric,
        value=value,
        threshold=threshold,
        reason=THRESHOLD_REASONS[metric],
        advice=THRESHOLD_ADVICE[metric],
    )


C = TypeVar("C", DatabaseOut, QueueOut)


def _degraded(component: C, alerts: list[AlertOut]) -> C:
    """A healthy component over one of its thresholds is degraded, saying why and what to do."""
    if not alerts or component.status != "healthy":
        return component
    return msgspec.structs.replace(
        component,
        status="degraded",
        reason="; ".join(a.reason for a in alerts),
        advice="; ".join(a.advice for a in alerts),
    )


def sending(components: ComponentsOut) -> SendingOut:
    """Paused when the sender cannot send: it needs the database, the queue, and (enabled)
    the rate limiter's Redis, without which it takes no message."""
    if components.database.status == "unhealthy":
        return SendingOut(status="paused", reason="the database does not answer")
    if components.sqs.status == "unhealthy":
        return SendingOut(status="paused", reason="the message queue does not answer")
    if components.rate_limiter.status == "unhealthy":
        return SendingOut(
            status="paused",
            reason="the rate limiter does not answer: the sender takes no message until it"
            " does; queued messages wait, no attempt counted",
        )
    return SendingOut(status="active")


def without_internals(health: HealthOut) -> HealthOut:
    """The same health with every internal error text replaced by its plain reason."""
    c = health.components
    replace = msgspec.structs.replace
    return replace(
        health,
        components=ComponentsOut(
            database=replace(c.database, error=None),
            sqs=replace(c.sqs, error=None),
            rate_limiter=replace(c.rate_limiter, error=None),
            projections=replace(
                c.projections,
                error=None,
                projectors=[
                    replace(p, last_error=PROJECTOR_ERROR if p.last_error else None)
                    for p in c.projections.projectors
                ],
            ),
        ),
    )


def overall(database: Status, queue: Status, limiter: Status, projections: Status) -> Status:
    """Unhealthy when sending cannot work at all (the limiter's Redis away included: the
    sender then takes nothing); degraded when it works less well."""
    if "unhealthy" in (database, queue, limiter):
        return "unhealthy"
    if any(status != "healthy" for status in (database, queue, limiter, projections)):
        return "degraded"
    return "healthy"


async def probe_database(container: Container) -> DatabaseOut:
    started = time.perf_counter()
    try:
        await _bounded(container.pool.fetchval("SELECT 1"))
    except Exception as error:
        return DatabaseOut(status="unhealthy", reason=REASONS["database"], error=_describe(error))
    latency = _ms_since(started)
    metrics.database_latency(latency)
    return DatabaseOut(status="healthy", latency_ms=latency)


async def probe_campaign_stalls(container: Container) -> None:
    """The campaign worker runs in a process of its own: what it recorded stalled is read
    here, so that every API process's /metrics shows it. A failed look leaves the gauge."""
    with contextlib.suppress(Exception):
        metrics.campaigns_stalled_now(await _bounded(stalled_campaigns(container.pool)))


async def probe_queue(container: Container) -> QueueOut:
    """Asks the queue itself (not the cached queue status, which lives in Redis)."""
    backend = container.settings.queue_backend
    try:
        stats = await _bounded(asyncio.gather(*(container.queue.stats(q) for q in QUEUES)))
    except Exception as error:
        return QueueOut(
            status="unhealthy", backend=backend, reason=REASONS["sqs"], error=_describe(error)
        )
    for name, one in zip(QUEUES, stats, strict=True):
        metrics.queue_depth(name, one.visible, one.dead_letters)
    return QueueOut(
        status="healthy",
        queue_depth=sum(one.visible for one in stats),
        dlq_count=sum(one.dead_letters for one in stats),
        backend=backend,
    )


async def probe_rate_limiter(container: Container) -> RateLimiterOut:
    if not container.settings.rate_limiter_enabled:
        return RateLimiterOut(status="healthy", enabled=False)
    if container.redis is None:
        return RateLimiterOut(
            status="unhealthy",
            enabled=True,
            reason=REASONS["rateLimiter"],
            error="no REDIS_URL configured",
        )
    started = time.perf_counter()
    try:
        await _bounded(container.redis.ping())
    except Exception as error:
        return RateLimiterOut(
            status="unhealthy", enabled=True, reason=REASONS["rateLimiter"], error=_describe(error)
        )
    return RateLimiterOut(status="healthy", enabled=True, latency_ms=_ms_since(started))


async def probe_projections(container: Container) -> ProjectionsOut:
    try:
        statuses = await _bounded(projector_status(container.pool, bootstrap.all_projections()))
    except Exception as error:
        return ProjectionsOut(
            status="degraded", reason=REASONS["projections"], error=_describe(error)
        )
    projectors = [
        ProjectorOut(
            name=s.name,
            position=s.position,
            lag_events=s.lag_events,
            lag_seconds=round(s.lag_seconds, 3),
            last_error=s.last_error,
        )
        for s in statuses
    ]
    lagging = any(p.last_error or p.lag_seconds > PROJECTION_LAG_SECONDS for p in projectors)
    return ProjectionsOut(
        status="degraded" if lagging else "healthy",
        reason=REASONS["projections"] if lagging else None,
        max_lag_events=max((p.lag_events for p in projectors), default=0),
        max_lag_seconds=max((p.lag_seconds for p in projectors), default=0.0),
        projectors=projectors,
    )


async def _bounded(probe: Awaitable[T]) -> T:
    async with asyncio.timeout(PROBE_TIMEOUT):
        return await probe


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _describe(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g} s"
    return f"{type(error).__name__}: {error}"[:300]
