"""The metrics the dashboard and the alarms of deploy/template.yaml query are metrics fancrm
emits: each recording function of adapters/metrics.py is run through the EMF sink every
process uses (the Lambda and each ECS task alike), the printed lines are read as CloudWatch
Logs reads them, and every (namespace, metric, dimensions) the template asks CloudWatch for
must be among the ones those lines publish. And the ECS tasks really print those lines: the
template gives them the namespace, and no OTLP exporter or collector beside them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from adapters import metrics
from adapters.config import cloudwatch_namespace_from, emf_wanted
from application.queue import QUEUES
from tests.support.cloudformation import load_template
from tests.support.emf import REFERENCE_METRICS, emf_documents

# (namespace, metric name, dimensions as (name, value) pairs)
Series = tuple[str, str, frozenset[tuple[str, str]]]
OUR_NAMESPACE = {"Ref": "CloudWatchNamespace"}


def default_namespace(template: dict[str, Any]) -> str:
    return str(template["Parameters"]["CloudWatchNamespace"]["Default"])


def resolved_environment(variables: dict[str, Any], template: dict[str, Any]) -> dict[str, str]:
    """A process's environment as the stack's defaults make it (other intrinsics: a stand-in)."""
    return {
        name: default_namespace(template)
        if value == OUR_NAMESPACE
        else value
        if isinstance(value, str)
        else "resolved-at-deploy-time"
        for name, value in variables.items()
    }


def expand(lines: list[list[Any]]) -> Iterator[list[str]]:
    """A widget's metric lines with CloudWatch's shorthands spelled out: "..." repeats the
    previous line's leading items, "." the previous line's item at that place. A trailing
    object (rendering options) is dropped."""
    previous: list[str] = []
    for line in lines:
        items = [item for item in line if not isinstance(item, dict)]
        if items and items[0] == "...":
            items = previous[: len(previous) - len(items) + 1] + items[1:]
        items = [previous[i] if item == "." else item for i, item in enumerate(items)]
        previous = items
        yield items


def dashboard_series(template: dict[str, Any]) -> set[Series]:
    [dashboard] = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    text, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert variables["Namespace"] == OUR_NAMESPACE
    text = text.replace("${Namespace}", default_namespace(template))
    body = json.loads(re.sub(r"\$\{[^}]+\}", "resolved-at-deploy-time", text))
    found = set()
    for widget in body["widgets"]:
        for namespace, name, *dimensions in expand(widget["properties"]["metrics"]):
            pairs = frozenset(zip(dimensions[::2], dimensions[1::2], strict=True))
            found.add((namespace, name, pairs))
    return {series for series in found if series[0] == default_namespace(template)}


def alarm_series(template: dict[str, Any]) -> set[Series]:
    """What the alarms watch under our namespace: a single metric, or a metric math's stats."""
    found = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        watched = [properties] + [
            query["MetricStat"]["Metric"]
            for query in properties.get("Metrics", [])
            if "MetricStat" in query
        ]
        for metric in watched:
            if metric.get("Namespace") != OUR_NAMESPACE:
                continue
            pairs = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
            found.add((default_namespace(template), metric["MetricName"], pairs))
    return found


def record_everything() -> None:
    """Every recording function of adapters/metrics.py, with each label value the code uses."""
    for queue in QUEUES:
        metrics.message_queued("creator-1", queue, 3)
        metrics.queue_depth(queue, 1200, 11)
    for stage in ("relay", "sender"):
        metrics.message_failed("creator-1", stage)
    for outcome in ("sent", "failed"):
        metrics.message_processed("creator-1", outcome)
    metrics.processing_time(12.5)
    metrics.database_latency(140.0)
    metrics.campaign_launched("creator-1", 250)
    metrics.campaign_stalled()
    metrics.campaigns_stalled_now(1)
    metrics.campaign_fans_skipped(2)


def emitted_series(lines: list[str]) -> set[Series]:
    """What CloudWatch Logs publishes from these lines: each metric once per dimension set."""
    found = set()
    for document in emf_documents(lines):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                pairs = frozenset((name, document[name]) for name in dimension_set)
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], pairs))
    return found


def test_every_metric_the_dashboard_and_alarms_query_is_one_fancrm_emits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    template = load_template()
    lambda_env = resolved_environment(
        template["Resources"]["SenderFunction"]["Properties"]["Environment"]["Variables"],
        template,
    )
    # A deployment may name its service for Powertools; the aggregate must not move.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "fancrm-api")
    sink = metrics.install_emf(cloudwatch_namespace_from(lambda_env))
    try:
        record_everything()
        sink.flush()
    finally:
        metrics.uninstall_emf()
    emitted = emitted_series(capsys.readouterr().out.splitlines())

    queried = dashboard_series(template) | alarm_series(template)
    assert {name for _, name, _ in queried} == {*REFERENCE_METRICS, "onlyfans.db.latency"}
    assert ("Huntaze/OnlyFans", "onlyfans.db.latency", frozenset()) in alarm_series(template)
    assert queried - emitted == set()


def test_every_ecs_task_prints_emf_and_none_exports_otlp_or_runs_a_collector() -> None:
    template = load_template()
    resources = template["Resources"]
    served = {
        resource["Properties"]["TaskDefinition"]["Ref"]
        for resource in resources.values()
        if resource["Type"] == "AWS::ECS::Service"
    }
    tasks = {
        logical_id: resource["Properties"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::ECS::TaskDefinition"
    }
    assert served == set(tasks) - {"MigrateTaskDefinition"}  # the one-off has no service
    for logical_id, task in tasks.items():
        for container in task["ContainerDefinitions"]:
            # The one fancrm image: no sidecar of any kind.
            assert container["Image"] == {"Ref": "ImageUri"}, logical_id
            env = resolved_environment(
                {v["Name"]: v["Value"] for v in container.get("Environment", [])}, template
            )
            assert not [n for n in env if n.startswith("OTEL_EXPORTER_OTLP")], logical_id
            assert not metrics.otlp_wanted(env, "METRICS"), logical_id
            if logical_id in served:
                assert emf_wanted(env), logical_id
                assert cloudwatch_namespace_from(env) == "Huntaze/OnlyFans", logical_id
                assert container["LogConfiguration"]["LogDriver"] == "awslogs", logical_id


def test_the_shorthands_of_a_dashboard_line_are_spelled_out() -> None:
    lines = [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "a"],
        ["...", "b"],
        [".", "NumberOfMessagesSent", ".", ".", {"stat": "Sum"}],
        ["NS", "m", {"stat": "Average"}],
        ["...", {"stat": "Maximum"}],
    ]
    assert list(expand(lines)) == [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "a"],
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "b"],
        ["AWS/SQS", "NumberOfMessagesSent", "QueueName", "b"],
        ["NS", "m"],
        ["NS", "m"],
    ]
