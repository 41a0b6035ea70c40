from __future__ import annotations

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapters import metrics


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[tuple[dict[str, object], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = [
                    (dict(point.attributes or {}), point.value)  # type: ignore[union-attr]
                    for point in metric.data.data_points
                ]
    return found


def test_queue_metrics_carry_the_reference_names_and_labels() -> None:
    reader = InMemoryMetricReader()
    metrics.install([reader])
    metrics.message_queued("t1", "high")
    metrics.message_queued("t1", "high")
    metrics.message_failed("t1", "relay")
    metrics.queue_depth("normal", 42, 2)
    points = _points(reader)
    assert points["onlyfans.message.queued"] == [({"tenant": "t1", "queue": "high"}, 2)]
    assert points["onlyfans.message.failed"] == [({"tenant": "t1", "stage": "relay"}, 1)]
    assert points["onlyfans.queue.depth"] == [({"queue": "normal"}, 42)]
    assert points["onlyfans.dlq.count"] == [({"queue": "normal"}, 2)]
