"""The built Lambda zip, run as the Lambda runtime would: unpacked alone into a folder, imported
by an interpreter that sees nothing else (``-I -S``: no site-packages, no PYTHONPATH, no
current folder; sys.path is the folder and the standard library), invoked with events in the
JSON shape AWS's SQS event source sends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from application.queue import ReceivedMessage

# The invoker, run by ``python -I -S -c``: argv = [task folder, events file]. It prints, for
# each event, one line "@@answer <json>" with the handler's answer and the seconds it took,
# then "@@usage <json>" (CPU seconds and peak memory of the process).
INVOKER = """
import sys
task, events_path = sys.argv[1], sys.argv[2]
sys.path[:] = [task, *STDLIB]
import json, resource, time, uuid
started = time.perf_counter()
from worker.sender import lambda_handler
imported = time.perf_counter() - started

class Context:
    function_name = "huntaze-rate-limiter"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:huntaze-rate-limiter"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/huntaze-rate-limiter"
    log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"
    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return 60000

for event in json.load(open(events_path)):
    began = time.perf_counter()
    answer = lambda_handler(event, Context())
    took = time.perf_counter() - began
    print("@@answer " + json.dumps({"answer": answer, "seconds": took}), flush=True)
usage = resource.getrusage(resource.RUSAGE_SELF)
print("@@usage " + json.dumps({
    "cpu_seconds": usage.ru_utime + usage.ru_stime,
    "max_rss_kb": usage.ru_maxrss,
    "import_seconds": imported,
    "modules": sorted({name.split(".")[0] for name in sys.modules}),
}), flush=True)
"""


_STDLIB_OF = (
    "import json, os, sysconfig; p = sysconfig.get_paths(); s = p['stdlib'];"
    " print(json.dumps([s, p['platstdlib'], os.path.join(s, 'lib-dynload')]))"
)


def stdlib_paths(python: str) -> list[str]:
    """That interpreter's standard library folders, and nothing of site-packages."""
    found = json.loads(
        subprocess.run(
            [python, "-I", "-S", "-c", _STDLIB_OF], capture_output=True, text=True, check=True
        ).stdout
    )
    return list(dict.fromkeys(p for p in found if os.path.isdir(p)))


def unpack(zip_path: Path, task: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(task)
    return task


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def sqs_event(
    queue_arn: str, received: list[ReceivedMessage], *, region: str = "us-east-1"
) -> dict[str, Any]:
    """An SQS event exactly as Lambda's event source sends it for these messages."""
    now = int(time.time() * 1000)
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": str(m.receive_count),
                    "SentTimestamp": str(now - 1500),
                    "SenderId": "AROAEXAMPLE123456789:fancrm-relay",
                    "ApproximateFirstReceiveTimestamp": str(now - 1000),
                },
                "messageAttributes": {
                    name: {
                        "stringValue": value,
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "String",
                    }
                    for name, value in m.attributes.items()
                },
                "md5OfBody": hashlib.md5(m.body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in received
        ]
    }


@dataclass
class Invocations:
    """What the isolated process printed: answers, usage, and every other line (logs, EMF)."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    first_answer_after: float | None = None  # seconds from the process's start
    returncode: int | None = None
    stderr: str = ""


async def invoke_isolated(
    task: Path,
    events: list[dict[str, Any]],
    env: dict[str, str],
    work: Path,
    python: str = sys.executable,
) -> Invocations:
    """Run the unpacked zip in a fresh ``python -I -S -B`` (``python``: an interpreter of the
    version the zip was built for) and hand it ``events`` in turn."""
    events_path = work / f"events-{time.monotonic_ns()}.json"
    events_path.write_text(json.dumps(events))
    invoker = INVOKER.replace("STDLIB", repr(stdlib_paths(python)))
    base = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        # -B: no __pycache__ written, as on Lambda, whose /var/task is read-only.
        python, "-I", "-S", "-B", "-c", invoker, str(task), str(events_path),
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    stderr = asyncio.ensure_future(process.stderr.read())
    found = Invocations()
    async for raw in process.stdout:
        line = raw.decode().rstrip("\n")
        if line.startswith("@@answer "):
            if found.first_answer_after is None:
                found.first_answer_after = time.perf_counter() - started
            found.answers.append(json.loads(line.removeprefix("@@answer ")))
        elif line.startswith("@@usage "):
            found.usage = json.loads(line.removeprefix("@@usage "))
        else:
            found.lines.append(line)
    found.returncode = await process.wait()
    found.stderr = (await stderr).decode()
    return found
