"""GET /api/monitoring/onlyfans applies the guide's three thresholds (queueDepth > 1000,
dlqCount > 10, dbLatencyMs > 100): each crossed alone answers 200 "degraded", naming the
metric, its reason and the guide's advice; each is configurable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.config import Settings
from adapters.http import monitoring
from application.queue import OutgoingMessage
from tests.support.sending import Stack, open_stack

HEALTH = "/api/monitoring/onlyfans"
# Thresholds no test reaches, so that only the one under test can be crossed.
FAR = {"queue_depth_threshold": 10**9, "dlq_threshold": 10**9, "db_latency_threshold_ms": 1e9}


async def health(stack: Stack) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(10):
        response = await stack.http.get(HEALTH, headers=stack.auth)
    return response.status_code, response.json()


def _only_alert(body: dict[str, Any], metric: str) -> dict[str, Any]:
    assert [alert["metric"] for alert in body["alerts"]] == [metric]
    return body["alerts"][0]


@pytest.mark.timeout(60)
async def test_a_queue_deeper_than_its_threshold_is_degraded_with_reason_and_advice(
    fresh_database_url: str,
) -> None:
    settings = {**FAR, "queue_depth_threshold": 1, "rate_limiter_enabled": False}
    async with open_stack(fresh_database_url, **settings) as stack:
        code, body = await health(stack)
        assert body["status"] == "healthy"
        await stack.container.queue.send_batch(
            "normal", [OutgoingMessage(entry_id=f"m{i}", body=f"body {i}") for i in range(2)]
        )
        code, body = await health(stack)
    assert code == 200
    assert body["status"] == "degraded"
    assert body["failing"] == ["sqs"]
    alert = _only_alert(body, "queueDepth")
    assert (alert["value"], alert["threshold"]) == (2, 1)
    assert alert["advice"] == monitoring.THRESHOLD_ADVICE["queueDepth"]
    sqs = body["components"]["sqs"]
    assert sqs["status"] == "degraded"
    assert sqs["reason"] == monitoring.THRESHOLD_REASONS["queueDepth"]
    assert "concurrency" in sqs["advice"]
    assert body["sending"] == {"status": "active"}  # degraded, not stopped


@pytest.mark.timeout(60)
async def test_more_dead_letters_than_the_threshold_is_degraded_with_reason_and_advice(
    fresh_database_url: str,
) -> None:
    settings = {**FAR, "dlq_threshold": 0, "rate_limiter_enabled": False, "max_receive_count": 1}
    async with open_stack(fresh_database_url, **settings) as stack:
        queue = stack.container.queue
        await queue.send_batch("high", [OutgoingMessage(entry_id="m", body="doomed")])
        (first,) = await queue.receive("high")
        await queue.change_visibility("high", first.receipt, 0)
        assert await queue.receive("high") == []  # past max_receive_count: dead-lettered
        code, body = await health(stack)
    assert code == 200
    assert body["status"] == "degraded"
    alert = _only_alert(body, "dlqCount")
    assert (alert["value"], alert["threshold"]) == (1, 0)
    sqs = body["components"]["sqs"]
    assert (sqs["status"], sqs["dlqCount"]) == ("degraded", 1)
    assert sqs["reason"] == monitoring.THRESHOLD_REASONS["dlqCount"]
    assert "/api/onlyfans/dlq" in sqs["advice"]


@pytest.mark.timeout(60)
async def test_a_database_slower_than_its_threshold_is_degraded_with_the_measured_latency(
    fresh_database_url: str,
) -> None:
    settings = {**FAR, "db_latency_threshold_ms": 0.0, "rate_limiter_enabled": False}
    async with open_stack(fresh_database_url, **settings) as stack:
        code, body = await health(stack)
    assert code == 200
    assert body["status"] == "degraded"
    assert body["failing"] == ["database"]
    alert = _only_alert(body, "dbLatencyMs")
    assert alert["value"] == body["dbLatencyMs"] == body["components"]["database"]["latencyMs"]
    assert body["dbLatencyMs"] > 0
    database = body["components"]["database"]
    assert database["status"] == "degraded"
    assert database["reason"] == monitoring.THRESHOLD_REASONS["dbLatencyMs"]
    assert "indexes" in database["advice"]


def test_the_thresholds_default_to_the_guides_and_come_from_the_environment() -> None:
    default = Settings.from_env({"DATABASE_URL": "postgresql://x/y"})
    assert (
        default.queue_depth_threshold,
        default.dlq_threshold,
        default.db_latency_threshold_ms,
    ) == (1000, 10, 100.0)
    configured = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://x/y",
            "CRM_QUEUE_DEPTH_THRESHOLD": "5000",
            "CRM_DLQ_THRESHOLD": "0",
            "CRM_DB_LATENCY_THRESHOLD_MS": "250.5",
        }
    )
    assert (
        configured.queue_depth_threshold,
        configured.dlq_threshold,
        configured.db_latency_threshold_ms,
    ) == (5000, 0, 250.5)
