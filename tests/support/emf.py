"""What CloudWatch requires of an Embedded Metric Format document (its published
specification), checked on the lines a process printed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# The reference guide's metrics table.
REFERENCE_METRICS = (
    "onlyfans.message.queued",
    "onlyfans.message.processed",
    "onlyfans.message.failed",
    "onlyfans.queue.depth",
    "onlyfans.dlq.count",
    "onlyfans.processing.time",
    "onlyfans.bulk.campaign",
    "onlyfans.bulk.recipients",
)
_UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}


def emf_documents(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The EMF documents among these lines (JSON objects with an ``_aws`` key), each checked."""
    documents = []
    for line in lines:
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        check_emf(document)
        documents.append(document)
    return documents


def check_emf(document: dict[str, Any]) -> None:
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int)
    assert meta["Timestamp"] > 0
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list)
    assert directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str)
        assert 0 < len(directive["Namespace"]) <= 1024
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document[name], str), f"dimension {name} has no string value"
        metrics = directive["Metrics"]
        assert 0 < len(metrics) <= 100
        for metric in metrics:
            assert metric.get("Unit", "None") in _UNITS
            value = document[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 0 < len(values) <= 100
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def metric_values(documents: Iterable[dict[str, Any]], namespace: str) -> dict[str, list[float]]:
    """Every value each metric was given under ``namespace``, across documents."""
    found: dict[str, list[float]] = {}
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != namespace:
                continue
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                found.setdefault(metric["Name"], []).extend(
                    value if isinstance(value, list) else [value]
                )
    return found
