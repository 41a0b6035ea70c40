"""deploy/template.yaml on its own: it passes cfn-lint (and `sam validate --lint` where the SAM
CLI is installed), its concurrency table follows the formula written above it, and each IAM
role reaches only what its process uses."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cloudformation import TEMPLATE, load_template

# Resource "*" only where the action takes no resource (or a condition scopes it).
ACTIONS_WITHOUT_RESOURCES = {
    "ecr:GetAuthorizationToken",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
QUEUES = {"NormalQueue", "HighQueue"}
DEAD_LETTER_QUEUES = {"NormalDeadLetterQueue", "HighDeadLetterQueue"}


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            found.append(
                {
                    **statement,
                    "Action": actions if isinstance(actions, list) else [actions],
                    "Resource": resources if isinstance(resources, list) else [resources],
                }
            )
    return found


def named(resources: list[Any]) -> set[str]:
    """The logical ids a statement's resources name (GetAtt X.Arn)."""
    return {r["Fn::GetAtt"][0] for r in resources if isinstance(r, dict) and "Fn::GetAtt" in r}


def sqs_reach(role: dict[str, Any]) -> dict[str, set[str]]:
    """Queue logical id -> the SQS actions the role may take on it."""
    reach: dict[str, set[str]] = {}
    for statement in statements(role):
        for action in (a for a in statement["Action"] if a.startswith("sqs:")):
            for queue in named(statement["Resource"]):
                reach.setdefault(queue, set()).add(action)
    return reach


def test_the_template_passes_cfn_lint() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_sam_validate_lint_accepts_the_template() -> None:
    sam = shutil.which("sam")
    if sam is None:
        pytest.skip(
            "no SAM CLI on PATH: aws-sam-cli is left out of the project's dependencies (its"
            " pins would move click, pydantic and boto3 in uv.lock); cfn-lint above runs the"
            " same checks (`sam validate --lint` calls it)"
        )
    result = subprocess.run(
        [sam, "validate", "--lint", "--template-file", str(TEMPLATE), "--region", "us-east-1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sender_concurrency_table_follows_the_formula_above_it() -> None:
    # clamp(A * ceil((B - 1 + r * L) / B), 2, 500), B = 10 records, L = 2 s.
    template = load_template()
    table = template["Mappings"]["SenderConcurrency"]
    rates = template["Parameters"]["RateLimitPerSecond"]["AllowedValues"]
    accounts = template["Parameters"]["SendingAccounts"]["AllowedValues"]
    assert set(table) == set(rates)
    for rate in rates:
        assert set(table[rate]) == set(accounts)
        for count in accounts:
            per_account = math.ceil((10 - 1 + int(rate) * 2) / 10)
            assert table[rate][count] == min(500, max(2, int(count) * per_account)), (rate, count)


def test_every_wildcard_resource_is_an_action_that_takes_none() -> None:
    for logical_id, resource in load_template()["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in statements(resource):
            if "*" in statement["Resource"]:
                assert set(statement["Action"]) <= ACTIONS_WITHOUT_RESOURCES, logical_id


def test_each_role_reaches_only_the_queues_its_process_uses() -> None:
    roles = {
        logical_id: resource
        for logical_id, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    sender = sqs_reach(roles["SenderRole"])
    assert set(sender) == QUEUES | DEAD_LETTER_QUEUES
    # Its scheduled sweep reads dead letters and hides them; it never deletes one.
    assert all("sqs:DeleteMessage" not in sender[q] for q in DEAD_LETTER_QUEUES)
    assert all("sqs:ReceiveMessage" in sender[q] for q in DEAD_LETTER_QUEUES)
    relay = sqs_reach(roles["RelayTaskRole"])
    assert set(relay) == QUEUES  # it sends; dead letters are SQS's and the sender's
    assert all(actions >= {"sqs:SendMessage"} for actions in relay.values())
    api = sqs_reach(roles["ApiTaskRole"])
    assert all("sqs:SendMessage" not in actions for actions in api.values())
    assert {q for q, actions in api.items() if "sqs:DeleteMessage" in actions} == (
        DEAD_LETTER_QUEUES  # a redrive removes dead letters; the queues' messages are the sender's
    )
    for quiet in ("DatabaseWorkerTaskRole", "MigrateTaskRole", "TaskExecutionRole"):
        assert sqs_reach(roles[quiet]) == {}, quiet
    assert "Policies" not in roles["MigrateTaskRole"]["Properties"]


def test_only_the_agent_reads_the_secrets_it_injects() -> None:
    roles = {
        logical_id: resource
        for logical_id, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    readers = {
        logical_id
        for logical_id, role in roles.items()
        for statement in statements(role)
        if any(action.startswith("secretsmanager:") for action in statement["Action"])
    }
    assert readers == {"TaskExecutionRole"}
