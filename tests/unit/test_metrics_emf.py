"""The reference's metrics as CloudWatch Embedded Metric Format lines: what a long-running
process prints when CLOUDWATCH_NAMESPACE asks for them, and how recordings are gathered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import metrics
from adapters.metrics_emf import EmfSink
from tests.support.emf import REFERENCE_METRICS, emf_documents, metric_values

ROOT = Path(__file__).resolve().parents[2]

# Records each of the reference's metrics, waits for one timed flush, records more: the rest
# must come out at exit.
_PROCESS = """
import sys, time
from adapters import metrics
metrics.configure_from_env()
metrics.message_queued("t1", "high", 3)
metrics.message_processed("t1", "sent")
metrics.message_failed("t1", "sender")
metrics.queue_depth("normal", 42, 2)
metrics.processing_time(12.5)
metrics.campaign_launched("t1", 250)
deadline = time.monotonic() + 20
while metrics._emf[0]._counts and time.monotonic() < deadline:
    time.sleep(0.01)
metrics.processing_time(7.0)
"""


def test_a_process_with_cloudwatch_namespace_prints_the_eight_metrics_as_emf() -> None:
    env = {
        **os.environ,
        "CLOUDWATCH_NAMESPACE": "Test/Crm",
        "METRICS_EMF_INTERVAL": "0.05",
        "OTEL_SDK_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    documents = emf_documents(done.stdout.splitlines())
    values = metric_values(documents, "Test/Crm")
    assert set(REFERENCE_METRICS) <= set(values)
    assert values["onlyfans.message.queued"] == [3]
    assert values["onlyfans.queue.depth"] == [42]
    assert values["onlyfans.bulk.recipients"] == [250]
    assert values["onlyfans.processing.time"] == [12.5, 7.0]  # the second one at exit
    assert all("tenant" not in document for document in documents)


def test_without_namespace_or_switch_a_process_prints_no_emf() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"CLOUDWATCH_NAMESPACE", "METRICS_EMF"}}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from adapters import metrics; metrics.configure_from_env();"
            " metrics.message_processed('t1', 'sent'); print(len(metrics._emf))",
        ],
        cwd=ROOT,
        env={**env, "OTEL_SDK_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "0"


def test_counters_are_summed_per_flush_and_samples_kept(capsys: pytest.CaptureFixture[str]) -> None:
    sink = metrics.install_emf("Test/Sums")
    try:
        for _ in range(250):
            metrics.message_processed("t1", "sent")
        metrics.message_processed("t2", "failed")
        metrics.processing_time(3.0)
        metrics.processing_time(4.5)
        sink.flush()
        sink.flush()  # nothing new: nothing printed
    finally:
        metrics.uninstall_emf()
    documents = emf_documents(capsys.readouterr().out.splitlines())
    by_outcome = {
        d["outcome"]: d["onlyfans.message.processed"] for d in documents if "outcome" in d
    }
    assert by_outcome == {"sent": [250.0], "failed": [1.0]}
    assert metric_values(documents, "Test/Sums")["onlyfans.processing.time"] == [3.0, 4.5]
    assert len(documents) == 3  # one line per set of dimensions


def test_more_than_a_hundred_samples_go_on_several_valid_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = EmfSink("Test/Many")
    for i in range(250):
        sink.sample("onlyfans.processing.time", "Milliseconds", float(i), {})
    sink.flush()
    documents = emf_documents(capsys.readouterr().out.splitlines())
    assert len(documents) == 3
    assert metric_values(documents, "Test/Many")["onlyfans.processing.time"] == [
        float(i) for i in range(250)
    ]
