from __future__ import annotations

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from adapters import metrics


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    # A histogram's point has no single value: its count stands for it.
                    (
                        dict(point.attributes or {}),
                        point.count if isinstance(point, HistogramDataPoint) else point.value,
                    )
                    for point in metric.data.data_points
                ]
    return found


def test_queue_metrics_carry_the_reference_names_and_labels() -> None:
    reader = InMemoryMetricReader()
    metrics.install([reader], tenant_labels=True)
    metrics.message_queued("t1", "high")
    metrics.message_queued("t1", "high")
    metrics.message_failed("t1", "relay")
    metrics.queue_depth("normal", 42, 2)
    points = _points(reader)
    assert points["onlyfans.message.queued"] == [({"tenant": "t1", "queue": "high"}, 2)]
    assert points["onlyfans.message.failed"] == [
        ({"tenant": "t1", "stage": "relay", "platform": "onlyfans"}, 1)
    ]
    assert points["onlyfans.queue.depth"] == [({"queue": "normal"}, 42)]
    assert points["onlyfans.dlq.count"] == [({"queue": "normal"}, 2)]


def test_every_metric_of_the_reference_table_is_recorded_under_its_name() -> None:
    reader = InMemoryMetricReader()
    metrics.install([reader], tenant_labels=True)
    metrics.message_queued("t1", "normal")
    metrics.message_processed("t1", "sent")
    metrics.message_failed("t1", "sender")
    metrics.queue_depth("high", 3, 1)
    metrics.processing_time(12.5)
    metrics.campaign_launched("t1", 250)
    points = _points(reader)
    assert set(points) == {
        "onlyfans.message.queued",
        "onlyfans.message.processed",
        "onlyfans.message.failed",
        "onlyfans.queue.depth",
        "onlyfans.dlq.count",
        "onlyfans.processing.time",
        "onlyfans.bulk.campaign",
        "onlyfans.bulk.recipients",
    }
    assert points["onlyfans.bulk.campaign"] == [({"tenant": "t1"}, 1)]
    assert points["onlyfans.bulk.recipients"] == [({"tenant": "t1"}, 250)]


def test_otlp_export_is_opt_in_by_the_standard_variables() -> None:
    assert not metrics.otlp_wanted({}, "TRACES")
    assert metrics.otlp_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "TRACES")
    assert metrics.otlp_wanted({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c"}, "METRICS")
    assert not metrics.otlp_wanted({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c"}, "TRACES")
    assert metrics.otlp_wanted({"OTEL_TRACES_EXPORTER": "otlp"}, "TRACES")
    assert not metrics.otlp_wanted(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, "TRACES"
    )


def test_sdk_disabled_installs_no_metrics() -> None:
    assert metrics.configure_from_env({"OTEL_SDK_DISABLED": "true"}) is None


def test_series_carry_no_tenant_label_unless_asked_for() -> None:
    reader = InMemoryMetricReader()
    metrics.install([reader])
    metrics.message_queued("t1", "high")
    metrics.message_queued("t2", "high")
    metrics.message_processed("t1", "sent")
    metrics.campaign_launched("t1", 3)
    points = _points(reader)
    assert points["onlyfans.message.queued"] == [({"queue": "high"}, 2)]
    assert points["onlyfans.message.processed"] == [
        ({"outcome": "sent", "platform": "onlyfans"}, 1)
    ]
    assert points["onlyfans.bulk.campaign"] == [({}, 1)]


def test_tenant_labels_come_with_the_metrics_token_or_by_name() -> None:
    assert not metrics.tenant_labels_wanted({})
    assert metrics.tenant_labels_wanted({"CRM_METRICS_TOKEN": "s3cret"})
    assert metrics.tenant_labels_wanted({"CRM_METRICS_TENANT_LABELS": "true"})
    assert not metrics.tenant_labels_wanted({"CRM_METRICS_TENANT_LABELS": "false"})


def test_the_database_latency_is_a_gauge_in_milliseconds_without_labels() -> None:
    # One series, like the EMF lines' aggregate that deploy/template.yaml's dbLatencyMs alarm
    # reads (tests/deploy/test_metrics_reach_the_dashboard.py checks that one).
    reader = InMemoryMetricReader()
    metrics.install([reader], tenant_labels=True)
    metrics.database_latency(12.0)
    metrics.database_latency(150.5)
    assert _points(reader)["onlyfans.db.latency"] == [({}, 150.5)]
