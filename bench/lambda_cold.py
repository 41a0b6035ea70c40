"""The sender's Lambda from its built zip: cold start, warm batches, CPU and memory per message.

    uv run python bench/lambda_cold.py                        # a zip for this interpreter
    uv run python bench/lambda_cold.py --python /path/to/python3.12   # Lambda's python3.12
    DATABASE_URL=postgresql://... REDIS_URL=redis://... uv run python bench/lambda_cold.py

The zip is built by ``crm package lambda`` (for the interpreter's Python version, x86_64),
unpacked alone into a temporary folder and run as tests/integration/test_lambda_package.py runs
it: a fresh ``python -I -S -B`` whose sys.path is that folder and the standard library (no
bytecode written, as on Lambda's read-only /var/task), configured from the environment only,
handed SQS events in the JSON shape AWS sends. Around it: a scratch Postgres database
(DATABASE_URL's server or an embedded one), Redis (REDIS_URL or an embedded redis-server; the
limiter on, at 10,000 sends/s so that it never makes a message wait), SQS on moto's server
(the queues' URLs given as SQS_RATE_LIMITER_*), and the OnlyFans simulator over HTTP
(``--latency`` per send, no jitter, no errors). The messages (priority 9: the high queue) are
put on the queue beforehand and received in batches of 10, so every event names real
receipts.

Printed:

* cold start, over ``--cold`` fresh processes each handed one batch of 10: from starting the
  process to having its answer (interpreter start, imports, building the pool and clients,
  and the batch), and the import of ``worker.sender`` alone; median and each run;
* warm: one process handed ``--batches`` batches of 10 after its first (cold) one: seconds
  per batch (median, p95);
* CPU seconds of that process per message, less a cold process's (its start-up), and its
  peak resident memory (ru_maxrss), with the growth over a cold process's per message.

Nothing here asserts a timing: the script prints figures. moto answers slower than SQS and the
machine is shared, so the figures bound, rather than predict, Lambda's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from _common import percentile, scratch_database

from adapters.cli_package import build_lambda_zip
from adapters.embedded import EmbeddedStack
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.sqs import queue_urls, sqs_client
from application.queue import ReceivedMessage
from tests.support.lambda_zip import Invocations, invoke_isolated, sqs_event, unpack
from tests.support.moto import CREDENTIALS, REGION, moto_server
from tests.support.sending import (
    ARN_PREFIX,
    Stack,
    aws_env,
    bulk_messages,
    fans_with_conversations,
    open_stack,
)
from tests.support.settings import TEST_MASTER_KEY

BATCH = 10


def _version_of(python: str) -> str:
    return subprocess.run(
        [python, "-I", "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


async def _batches(stack: Stack, count: int) -> list[list[ReceivedMessage]]:
    received: list[ReceivedMessage] = []
    async with asyncio.timeout(300):
        while len(received) < count * BATCH:
            received.extend(await stack.container.queue.receive("high", visibility_timeout=900))
    return [received[i : i + BATCH] for i in range(0, count * BATCH, BATCH)]


def _failures(run: Invocations) -> int:
    if run.returncode != 0:
        raise SystemExit(f"the Lambda process failed:\n{run.stderr[-4000:]}")
    return sum(len(a["answer"]["batchItemFailures"]) for a in run.answers)


async def main(args: argparse.Namespace) -> None:
    # moto's web server logs every request.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    python = args.python
    version = _version_of(python)
    with tempfile.TemporaryDirectory(prefix="fancrm-lambda-bench-") as tmp:
        work = Path(tmp)
        zip_path = build_lambda_zip(
            work / "fancrm-sender-lambda.zip",
            python_version=version,
            compile_with=None if args.no_compile else python,
        )
        task = unpack(zip_path, work / "task")
        print(
            f"zip: {zip_path.stat().st_size / 1e6:.1f} MB, Python {version} ({python}),"
            f" {'no bytecode' if args.no_compile else 'bytecode compiled in'}"
        )
        redis_stack = EmbeddedStack(work / "redis")
        redis_url = os.environ.get("REDIS_URL") or redis_stack.start_redis()
        try:
            with moto_server() as sqs_url:
                for name, value in aws_env().items():
                    os.environ[name] = value
                async with scratch_database() as (database_url, where):
                    print(f"Postgres: {where}; Redis: {redis_url.split('://')[0]}; SQS: moto")
                    await _run(args, python, task, work, database_url, redis_url, sqs_url)
        finally:
            redis_stack.stop()


async def _run(
    args: argparse.Namespace,
    python: str,
    task: Path,
    work: Path,
    database_url: str,
    redis_url: str,
    sqs_url: str,
) -> None:
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    async with (
        open_stack(
            database_url,
            queue_backend="sqs",
            sqs_endpoint_url=sqs_url,
            sqs_queue_prefix=prefix,
            redis_url=redis_url,
        ) as stack,
        sqs_client(endpoint_url=sqs_url, region_name=REGION, **CREDENTIALS) as sqs,
        Simulator(SimulatorConfig(latency=args.latency, latency_jitter=0.0)) as platform,
    ):
        urls = await queue_urls(sqs, prefix=prefix)
        env = {
            **aws_env(),
            "DATABASE_URL": database_url,
            "CRM_MASTER_KEY": TEST_MASTER_KEY,
            "REDIS_URL": redis_url,
            "RATE_LIMIT_PER_SECOND": "10000",
            "RATE_LIMIT_BURST": "10000",
            "SQS_ENDPOINT_URL": sqs_url,
            "SQS_RATE_LIMITER_QUEUE_URL": urls["normal"],
            "SQS_RATE_LIMITER_DLQ_URL": urls["normal-dlq"],
            "SQS_RATE_LIMITER_HIGH_QUEUE_URL": urls["high"],
            "SQS_RATE_LIMITER_HIGH_DLQ_URL": urls["high-dlq"],
            "ONLYFANS_API_URL": platform.url,
            "LOG_LEVEL": "WARNING",
        }
        total = args.cold + 1 + args.batches
        fans = await fans_with_conversations(stack, 20)
        await bulk_messages(stack, fans, total * BATCH, priority=9, via_outbox=False)
        batches = await _batches(stack, total)
        arn = f"{ARN_PREFIX}{prefix}-high"
        events = [sqs_event(arn, batch, region=REGION) for batch in batches]

        colds = [
            await invoke_isolated(task, [events[i]], env, work, python) for i in range(args.cold)
        ]
        warm = await invoke_isolated(task, events[args.cold :], env, work, python)
        failures = sum(_failures(run) for run in [*colds, warm])
        _print(args, colds, warm, failures, len(platform.deliveries()), total * BATCH)


def _print(
    args: argparse.Namespace,
    colds: list[Invocations],
    warm: Invocations,
    failures: int,
    delivered: int,
    sent: int,
) -> None:
    starts = [run.first_answer_after or 0.0 for run in colds]
    imports = [run.usage["import_seconds"] for run in colds]
    print(f"messages: {sent} handed over, {delivered} delivered, {failures} reported failed")
    print(
        f"cold start (process start to first answer, batch of {BATCH}): median "
        f"{statistics.median(starts) * 1000:.0f} ms; runs "
        + ", ".join(f"{s * 1000:.0f}" for s in starts)
    )
    print(
        f"  of which `import worker.sender`: median {statistics.median(imports) * 1000:.0f} ms;"
        f" the first batch's handler call: median "
        f"{statistics.median(r.answers[0]['seconds'] for r in colds) * 1000:.0f} ms"
    )
    per_batch = [answer["seconds"] for answer in warm.answers[1:]]
    print(
        f"warm batch of {BATCH} ({len(per_batch)} batches): median "
        f"{statistics.median(per_batch) * 1000:.1f} ms, p95 "
        f"{percentile(per_batch, 95) * 1000:.1f} ms"
    )
    cold_cpu = statistics.median(run.usage["cpu_seconds"] for run in colds)
    cold_rss = statistics.median(run.usage["max_rss_kb"] for run in colds)
    messages = len(per_batch) * BATCH
    print(
        f"CPU: {warm.usage['cpu_seconds']:.2f} s for the warm process, {cold_cpu:.2f} s for a"
        f" cold one: {(warm.usage['cpu_seconds'] - cold_cpu) / messages * 1000:.2f} ms per"
        f" message over {messages}"
    )
    print(
        f"peak memory (ru_maxrss): {warm.usage['max_rss_kb'] / 1024:.0f} MiB after"
        f" {messages + BATCH} messages, {cold_rss / 1024:.0f} MiB after {BATCH}:"
        f" {(warm.usage['max_rss_kb'] - cold_rss) / messages:.1f} KiB per message more"
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run it")
    parser.add_argument("--cold", type=int, default=3, help="cold starts (3)")
    parser.add_argument("--batches", type=int, default=30, help="warm batches of 10 (30)")
    parser.add_argument("--no-compile", action="store_true", help="a zip without bytecode")
    parser.add_argument("--latency", type=float, default=0.005, help="simulator s per send")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_arguments()))
