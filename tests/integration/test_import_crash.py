"""An import killed mid-file (SIGKILL, no chance to clean up) leaves its job consistent: what
the job counts is exactly what the log holds; resuming finishes the file without duplicates."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from adapters.bootstrap import Container
from adapters.cli_import import cli_actor
from tests.support.settings import TEST_MASTER_KEY

ROWS = 2000
pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]


def crm_import(database_url: str, tenant: str, path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "CRM_MASTER_KEY": TEST_MASTER_KEY}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from adapters.cli import main; main()",
            "import",
            "fans",
            str(path),
            "--user",
            tenant,
            *extra,
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def batches_committed(container: Container, tenant: str) -> int:
    return int(
        await container.pool.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'ImportJobBatchImported'"
            " AND metadata->>'tenant' = $1",
            tenant,
        )
    )


async def test_an_import_killed_mid_file_is_never_half_counted_and_resumes_to_the_end(
    container: Container, database_url: str, tmp_path: Path
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "fans.csv"
    path.write_text("handle,total spent\n" + "".join(f"fan{i},{i}\n" for i in range(ROWS)))
    process = crm_import(database_url, tenant, path, "--batch-size", "50", "--pause", "0.2")
    try:
        deadline = time.monotonic() + 60
        while await batches_committed(container, tenant) < 3:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()

    job_id, counted, last_row = await job_progress(container, tenant)
    created = await container.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'FanCreated' AND metadata->>'tenant' = $1",
        tenant,
    )
    assert 0 < counted < ROWS
    assert created == counted  # never half-counted: every committed row is in the job
    assert last_row == counted + 1

    resumed = crm_import(database_url, tenant, path, "--resume", job_id)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["status"] == "completed"
    assert result["summary"]["totalRows"] == ROWS
    assert result["summary"]["successfulInserts"] == ROWS
    created = await container.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'FanCreated' AND metadata->>'tenant' = $1",
        tenant,
    )
    assert created == ROWS
    actors = await container.pool.fetch(
        "SELECT DISTINCT metadata->>'actor' FROM events WHERE metadata->>'tenant' = $1", tenant
    )
    assert [row[0] for row in actors] == [cli_actor()]  # who imported, as the shell knows them


async def job_progress(container: Container, tenant: str) -> tuple[str, int, int]:
    rows = await container.pool.fetch(
        "SELECT stream_id, event_type, data FROM events"
        " WHERE stream_type = 'import' AND metadata->>'tenant' = $1 ORDER BY version",
        tenant,
    )
    assert {row["event_type"] for row in rows} == {"ImportJobStarted", "ImportJobBatchImported"}
    batches = [row["data"] for row in rows if row["event_type"] == "ImportJobBatchImported"]
    counted = sum(b["inserted"] + b["updated"] + b["skipped"] + b["error_count"] for b in batches)
    return rows[0]["stream_id"].removeprefix("import-"), counted, batches[-1]["last_row"]
