"""The reference's metrics, as OpenTelemetry instruments (names from its metrics table).

Instruments come from the global MeterProvider when first used, so whatever reader the
process installed (Prometheus at /metrics, OTLP, or an in-memory reader in tests) sees them;
with none installed they cost next to nothing. Nothing is created at import time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

_METER = "fancrm"


_installed: list[MeterProvider] = []


def install(readers: list[MetricReader]) -> MeterProvider:
    """Use a MeterProvider with these readers for our instruments from now on (at start-up;
    tests install an in-memory reader)."""
    provider = MeterProvider(metric_readers=readers)
    _installed[:] = [provider]
    _instruments.cache_clear()
    return provider


@cache
def _instruments() -> dict[str, Any]:
    provider = _installed[0] if _installed else metrics.get_meter_provider()
    meter = provider.get_meter(_METER)
    return {
        "queued": meter.create_counter(
            "onlyfans.message.queued", unit="{message}", description="Messages queued"
        ),
        "processed": meter.create_counter(
            "onlyfans.message.processed", unit="{message}", description="Messages processed"
        ),
        "failed": meter.create_counter(
            "onlyfans.message.failed", unit="{message}", description="Messages failed"
        ),
        "depth": meter.create_gauge(
            "onlyfans.queue.depth", unit="{message}", description="Messages waiting in the queue"
        ),
        "dlq": meter.create_gauge(
            "onlyfans.dlq.count", unit="{message}", description="Messages in the dead-letter queue"
        ),
        "processing_time": meter.create_histogram(
            "onlyfans.processing.time", unit="ms", description="Time to process a message"
        ),
        "campaigns": meter.create_counter(
            "onlyfans.bulk.campaign", unit="{campaign}", description="Bulk campaigns"
        ),
        "recipients": meter.create_gauge(
            "onlyfans.bulk.recipients", unit="{fan}", description="Recipients per campaign"
        ),
    }


def message_queued(tenant: str, queue: str) -> None:
    _instruments()["queued"].add(1, {"tenant": tenant, "queue": queue})


def message_failed(tenant: str, stage: str) -> None:
    _instruments()["failed"].add(1, {"tenant": tenant, "stage": stage})


def queue_depth(queue: str, visible: int, dead_letters: int) -> None:
    _instruments()["depth"].set(visible, {"queue": queue})
    _instruments()["dlq"].set(dead_letters, {"queue": queue})


def message_processed(tenant: str, outcome: str) -> None:
    _instruments()["processed"].add(1, {"tenant": tenant, "outcome": outcome})


def processing_time(milliseconds: float) -> None:
    _instruments()["processing_time"].record(milliseconds)
