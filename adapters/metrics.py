"""The reference's metrics, as OpenTelemetry instruments (names from its metrics table).

| metric                       | kind      | recorded where                                        |
|------------------------------|-----------|-------------------------------------------------------|
| onlyfans.message.queued      | counter   | per message first queued: sends, campaign chunks      |
| onlyfans.message.processed   | counter   | the sender, per outcome recorded (sent or failed)     |
| onlyfans.message.failed      | counter   | the relay (queue down) and the sender (refused, ...)  |
| onlyfans.queue.depth         | gauge     | each look at the queue: status, monitoring, /metrics  |
| onlyfans.dlq.count           | gauge     | the same looks, the dead-letter queues                |
| onlyfans.processing.time     | histogram | the sender, ms per record                             |
| onlyfans.bulk.campaign       | counter   | ``campaign_launched``: a launch (bulk, POST, PATCH)   |
| onlyfans.bulk.recipients     | gauge     | ``campaign_launched``: the campaign's recipients      |
| onlyfans.bulk.stalled        | counter   | the campaign worker, per round a campaign made no     |
|                              |           | progress after all its attempts (no tenant label)     |
| onlyfans.bulk.skipped        | counter   | the campaign worker, per fan skipped with a reason    |
| onlyfans.bulk.stalled_campaigns | gauge  | each /metrics scrape: active campaigns stalled now    |
| onlyfans.abtest.campaign     | counter   | a campaign launched as an A/B test, by goal          |
| onlyfans.abtest.winner       | counter   | the campaign worker, per auto-winner recorded, by goal|
| onlyfans.db.latency          | gauge     | each database probe (/health, monitoring), ms: the    |
|                              |           | guide's dbLatencyMs, for an alarm (deploy/template)   |
| live.tail.reads              | counter   | the live hub, per read of the log by its tail (one    |
|                              |           | per API process, whatever the clients: issue 18)      |
| live.tail.batches            | counter   | the same reads that found events                      |
| live.updates.offered         | counter   | the live hub, per update offered to a subscription    |
| live.clients                 | up-down   | the live hub's subscriptions (WebSocket and SSE)      |
| automation.enrolled          | counter   | the automation worker, per fan entering a sequence    |
| automation.step.sent         | counter   | the automation worker, per sequence step queued       |
| automation.exited            | counter   | the automation worker, per run ended early (reason)   |

Series are labelled by tenant (the creator account) only where the metrics are not public:
with CRM_METRICS_TOKEN set (/metrics then wants it), or with CRM_METRICS_TENANT_LABELS=true (an
explicit choice, say for an OTLP backend only operators read). Otherwise anyone who can reach
/metrics would learn every account's id and its activity, so the tenant label is left out and
the series add up over accounts.

Instruments come from the MeterProvider installed at start-up (``configure_from_env``:
Prometheus text at /metrics, OTLP when the OTEL_* variables ask for it), or from the global one
(a no-op) when nothing was installed; tests install an in-memory reader. Nothing is created at
import time.

For CloudWatch, each recording also goes to an EMF sink when one is installed
(adapters/metrics_emf.py): the Lambda installs one always, a long-running process when
CLOUDWATCH_NAMESPACE or METRICS_EMF=true asks for it (flushed every METRICS_EMF_INTERVAL
seconds, 60 by default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from adapters.config import cloudwatch_namespace_from, emf_wanted
from adapters.metrics_emf import EmfSink, start_flushing

_METER = "fancrm"


_installed: list[MeterProvider] = []
# The registry /metrics renders: the Prometheus reader's own, not prometheus_client's global
# one, so that installing again (tests) never shows a metric twice.
_prometheus: list[Any] = []
_tenant_labels: list[bool] = [False]
_emf: list[EmfSink] = []


def install_emf(namespace: str) -> EmfSink:
    """From now on, recordings also go to an EMF sink under ``namespace`` (the caller flushes
    it, or ``configure_from_env`` starts its flushing thread)."""
    sink = EmfSink(namespace)
    _emf[:] = [sink]
    return sink


def uninstall_emf() -> None:
    _emf.clear()


def install(
    readers: list[MetricReader], *, prometheus_registry: Any = None, tenant_labels: bool = False
) -> MeterProvider:
    """Use a MeterProvider with these readers for our instruments from now on (at start-up;
    tests install an in-memory reader). The previous one is shut down. ``tenant_labels``:
    label series by tenant (see the module's docstring for when)."""
    for previous in _installed:
        previous.shutdown()
    provider = MeterProvider(metric_readers=readers, resource=resource())
    _installed[:] = [provider]
    _prometheus[:] = [prometheus_registry] if prometheus_registry is not None else []
    _tenant_labels[0] = tenant_labels
    _instruments.cache_clear()
    return provider


def configure_from_env(env: Mapping[str, str] | None = None) -> MeterProvider | None:
    """The process's metrics: a Prometheus reader for /metrics always, and an OTLP exporter
    (OTEL_EXPORTER_OTLP_ENDPOINT, ..._HEADERS, OTEL_METRIC_EXPORT_INTERVAL, read by the
    exporter itself) when ``otlp_wanted`` says so. OTEL_SDK_DISABLED=true installs no reader.
    And the EMF sink with its flushing thread when ``emf_wanted``."""
    env = os.environ if env is None else env
    if emf_wanted(env):
        interval = float(env.get("METRICS_EMF_INTERVAL", "60"))
        start_flushing(install_emf(cloudwatch_namespace_from(env)), interval)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    if otlp_wanted(env, "METRICS"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return install(readers, prometheus_registry=registry, tenant_labels=tenant_labels_wanted(env))


def tenant_labels_wanted(env: Mapping[str, str]) -> bool:
    """Only behind the /metrics token, or when asked for by name."""
    asked = env.get("CRM_METRICS_TENANT_LABELS", "").strip().lower() in {"true", "1", "yes", "on"}
    return asked or bool(env.get("CRM_METRICS_TOKEN", "").strip())


def otlp_wanted(env: Mapping[str, str], signal: str) -> bool:
    """OTLP export is opt-in: OTEL_{signal}_EXPORTER=otlp, or an OTLP endpoint set (general or
    for the signal) without OTEL_{signal}_EXPORTER=none."""
    chosen = env.get(f"OTEL_{signal}_EXPORTER", "").strip().lower()
    if chosen:
        return "otlp" in chosen.split(",")
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    )


def resource() -> Resource:
    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "fancrm")})


def prometheus_text() -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type (empty without a Prometheus
    reader installed)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not _prometheus:
        return b"", CONTENT_TYPE_LATEST
    return generate_latest(_prometheus[0]), CONTENT_TYPE_LATEST


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
        "stalled": meter.create_counter(
            "onlyfans.bulk.stalled",
            unit="{round}",
            description="Campaign fan-out rounds that made no progress after all their attempts",
        ),
        "stalled_now": meter.create_gauge(
            "onlyfans.bulk.stalled_campaigns",
            unit="{campaign}",
            description="Active campaigns the campaign worker reports stalled",
        ),
        "db_latency": meter.create_gauge(
            "onlyfans.db.latency", unit="ms", description="Database round trip of a health probe"
        ),
        "ab_campaigns": meter.create_counter(
            "onlyfans.abtest.campaign",
            unit="{campaign}",
            description="Campaigns that are A/B tests",
        ),
        "ab_winners": meter.create_counter(
            "onlyfans.abtest.winner",
            unit="{campaign}",
            description="A/B test winners chosen by the auto-winner",
        ),
        "skipped": meter.create_counter(
            "onlyfans.bulk.skipped",
            unit="{fan}",
            description="Campaign recipients skipped for a reason (such as a message id in use)",
        ),
        "live_reads": meter.create_counter(
            "live.tail.reads", unit="{read}", description="Reads of the log by the live tail"
        ),
        "live_batches": meter.create_counter(
            "live.tail.batches",
            unit="{read}",
            description="Reads of the log by the live tail that found events",
        ),
        "live_offered": meter.create_counter(
            "live.updates.offered",
            unit="{update}",
            description="Updates offered to live subscriptions",
        ),
        "live_clients": meter.create_up_down_counter(
            "live.clients", unit="{client}", description="Live stream clients connected"
        ),
        "enrolled": meter.create_counter(
            "automation.enrolled", unit="{enrolment}", description="Fans entering a sequence"
        ),
        "step_sent": meter.create_counter(
            "automation.step.sent", unit="{message}", description="Sequence steps queued"
        ),
        "exited": meter.create_counter(
            "automation.exited", unit="{enrolment}", description="Sequence runs ended early"
        ),
    }


def _count(name: str, value: float, **dimensions: str) -> None:
    for sink in _emf:
        sink.count(name, value, dimensions)


def _sample(name: str, unit: str, value: float, **dimensions: str) -> None:
    for sink in _emf:
        sink.sample(name, unit, value, dimensions)


def _labels(tenant: str, **others: str) -> dict[str, str]:
    return {"tenant": tenant, **others} if _tenant_labels[0] else others


def message_queued(tenant: str, queue: str, count: int = 1) -> None:
    """``count`` messages recorded queued for the first time: a send, or a campaign's chunk
    (inline or by the worker); never a replayed request or a message queued before."""
    if count > 0:
        _instruments()["queued"].add(count, _labels(tenant, queue=queue))
        _count("onlyfans.message.queued", count, queue=queue)


def message_failed(tenant: str, stage: str, platform: str = "onlyfans") -> None:
    _instruments()["failed"].add(1, _labels(tenant, stage=stage, platform=platform))
    _count("onlyfans.message.failed", 1, stage=stage)


def queue_depth(queue: str, visible: int, dead_letters: int) -> None:
    _instruments()["depth"].set(visible, {"queue": queue})
    _instruments()["dlq"].set(dead_letters, {"queue": queue})
    _sample("onlyfans.queue.depth", "Count", visible, queue=queue)
    _sample("onlyfans.dlq.count", "Count", dead_letters, queue=queue)


def database_latency(milliseconds: float) -> None:
    """A probe's ``SELECT 1`` round trip (the monitoring's dbLatencyMs). /health records it
    too: the load balancer's and the container's health checks then sample it steadily."""
    _instruments()["db_latency"].set(milliseconds)
    _sample("onlyfans.db.latency", "Milliseconds", milliseconds)


def message_processed(tenant: str, outcome: str, platform: str = "onlyfans") -> None:
    # A ``platform`` label on the reference's metric, not a metric per platform: dashboards
    # that sum onlyfans.message.processed keep counting every message, and one query splits
    # them by platform. The CloudWatch (EMF) dimensions stay the reference's: a new dimension
    # would make a new series there, and the reference's dashboard would lose its own.
    _instruments()["processed"].add(1, _labels(tenant, outcome=outcome, platform=platform))
    _count("onlyfans.message.processed", 1, outcome=outcome)


def processing_time(milliseconds: float) -> None:
    _instruments()["processing_time"].record(milliseconds)
    _sample("onlyfans.processing.time", "Milliseconds", milliseconds)


def campaign_launched(tenant: str, recipients: int) -> None:
    """A bulk campaign started fanning out to ``recipients`` fans (called once per campaign,
    by the campaign code, when its recipients are known)."""
    _instruments()["campaigns"].add(1, _labels(tenant))
    _instruments()["recipients"].set(recipients, _labels(tenant))
    _count("onlyfans.bulk.campaign", 1)
    _sample("onlyfans.bulk.recipients", "Count", recipients)


def campaign_stalled() -> None:
    """A campaign with work made no progress in a worker round. No tenant label: an operator's
    alarm, and the campaign is named in the log line and `crm campaigns status`."""
    _instruments()["stalled"].add(1)
    _count("onlyfans.bulk.stalled", 1)


def campaigns_stalled_now(count: int) -> None:
    _instruments()["stalled_now"].set(count)
    _sample("onlyfans.bulk.stalled_campaigns", "Count", count)


def campaign_fans_skipped(count: int) -> None:
    _instruments()["skipped"].add(count)
    _count("onlyfans.bulk.skipped", count)


# The live stream's figures carry no tenant label: one tail serves every account of a process.


def live_tail_read() -> None:
    _instruments()["live_reads"].add(1)
    _count("live.tail.reads", 1)


def live_tail_batch() -> None:
    _instruments()["live_batches"].add(1)
    _count("live.tail.batches", 1)


def live_updates_offered(count: int) -> None:
    _instruments()["live_offered"].add(count)
    _count("live.updates.offered", count)


def live_clients(change: int) -> None:
    """A client joined (+1) or left (-1). Not sent to EMF, which sums what it is given per
    flush: a level is not the sum of its changes over a minute."""
    _instruments()["live_clients"].add(change)


def ab_test_launched(tenant: str, goal: str) -> None:
    """A campaign launched as an A/B test (its goal: purchase, reply or open)."""
    _instruments()["ab_campaigns"].add(1, _labels(tenant, goal=goal))
    _count("onlyfans.abtest.campaign", 1, goal=goal)


def ab_winner_chosen(tenant: str, goal: str) -> None:
    _instruments()["ab_winners"].add(1, _labels(tenant, goal=goal))
    _count("onlyfans.abtest.winner", 1, goal=goal)


def automation_enrolled(tenant: str) -> None:
    _instruments()["enrolled"].add(1, _labels(tenant))
    _count("automation.enrolled", 1)


def automation_step_sent(tenant: str, queue: str) -> None:
    """A sequence step's message recorded queued (once per step: it also counts as queued)."""
    _instruments()["step_sent"].add(1, _labels(tenant))
    _count("automation.step.sent", 1)
    message_queued(tenant, queue)


def automation_exited(tenant: str, reason: str) -> None:
    _instruments()["exited"].add(1, _labels(tenant, reason=reason))
    _count("automation.exited", 1, reason=reason)
