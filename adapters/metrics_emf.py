"""The reference's metrics for CloudWatch, as Embedded Metric Format (EMF) lines on stdout.

CloudWatch Logs turns a JSON line carrying ``_aws.CloudWatchMetrics`` into metrics under its
namespace: no agent, no PutMetricData call, nothing to wait for. Lambda sends its stdout to
CloudWatch Logs; so do ECS tasks with the awslogs driver. Powertools' Metrics writes the lines
(it checks names, units and dimensions, and starts a new line past 100 values of a metric).

adapters/metrics.py hands each recording here as well as to OpenTelemetry. What arrives is
gathered until ``flush``: counters summed (one value per flush, whatever the traffic),
gauges and timings kept as their samples (CloudWatch computes their statistics). The Lambda
flushes at the end of each invocation; a long-running process every ``interval`` seconds from
a thread (``start_flushing``) and once more at exit.

Each line carries two dimension sets. The first is empty: the metric over everything, the
same from every process (the Lambda and each ECS task alike), which is what deploy/template.yaml's
dashboard and db-latency alarm query, so a dashboard line never depends on which process
recorded it. The second, when the recording has labels, is those labels but never the tenant:
every distinct set of dimension values is a metric CloudWatch bills for, and a creator
account's id is not for a dashboard.
"""

from __future__ import annotations

import atexit
import threading
from collections import defaultdict

Dimensions = tuple[tuple[str, str], ...]
# (metric name, unit): Powertools' unit names.
_Key = tuple[str, str]


class EmfSink:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._lock = threading.Lock()
        # One flush at a time. The exit's flush would otherwise run while the timed one is
        # still printing: their lines interleave into invalid JSON, or the interpreter stops
        # the timer's daemon thread before it printed what it had taken.
        self._flushing = threading.Lock()
        self._counts: dict[Dimensions, dict[_Key, float]] = defaultdict(dict)
        self._samples: dict[Dimensions, dict[_Key, list[float]]] = defaultdict(dict)

    def count(self, name: str, value: float, dimensions: dict[str, str]) -> None:
        with self._lock:
            counts = self._counts[_dims(dimensions)]
            counts[(name, "Count")] = counts.get((name, "Count"), 0.0) + value

    def sample(self, name: str, unit: str, value: float, dimensions: dict[str, str]) -> None:
        with self._lock:
            self._samples[_dims(dimensions)].setdefault((name, unit), []).append(value)

    def flush(self) -> None:
        """Print what was gathered since the last flush (nothing if nothing was)."""
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, defaultdict(dict)
                samples, self._samples = self._samples, defaultdict(dict)
            self._print(counts, samples)

    def _print(
        self,
        counts: dict[Dimensions, dict[_Key, float]],
        samples: dict[Dimensions, dict[_Key, list[float]]],
    ) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics

        for dimensions in sorted(counts.keys() | samples.keys()):
            # One Powertools object per set of labels: a line has its dimensions for all its
            # metrics. Its primary dimension set stays empty (the aggregate); service="" keeps
            # POWERTOOLS_SERVICE_NAME, if a deployment sets it, from adding a `service`
            # dimension to that set, which would move every metric off the dashboard.
            line = EphemeralMetrics(namespace=self.namespace, service="")
            if dimensions:
                line.add_dimensions(**dict(dimensions))
            for (metric, unit), total in counts.get(dimensions, {}).items():
                line.add_metric(name=metric, unit=unit, value=total)
            for (metric, unit), values in samples.get(dimensions, {}).items():
                for value in values:
                    line.add_metric(name=metric, unit=unit, value=value)
            line.flush_metrics()


def _dims(dimensions: dict[str, str]) -> Dimensions:
    return tuple(sorted((k, v) for k, v in dimensions.items() if k != "tenant"))


def start_flushing(sink: EmfSink, interval: float) -> threading.Event:
    """A long-running process's flushes: every ``interval`` seconds, and at exit. Set the
    returned event to stop (it flushes once more)."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            sink.flush()
        sink.flush()

    threading.Thread(target=run, name="emf-flush", daemon=True).start()
    atexit.register(sink.flush)
    return stop
