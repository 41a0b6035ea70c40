"""`crm import transactions FILE --user ID`: the HTTP route's import from the shell, printing its
summary; run twice, the second records nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.imports import Headers
from tests.support.settings import TEST_MASTER_KEY

pytestmark = pytest.mark.timeout(90)


async def crm_import_transactions(database_url: str, tenant: str, path: Path) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": database_url, "CRM_MASTER_KEY": TEST_MASTER_KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        "import",
        "transactions",
        str(path),
        "--user",
        tenant,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


async def test_the_command_imports_a_file_once_however_often_it_runs(
    http: httpx.AsyncClient, auth: Headers, tenant: str, database_url: str, tmp_path: Path
) -> None:
    ann = f"fan_{uuid.uuid4().hex[:10]}"
    created = await http.post("/api/crm/fans", json={"handle": ann}, headers=auth)
    assert created.status_code == 201, created.text
    path = tmp_path / "earnings.csv"
    path.write_text(
        "Date;Username;Amount;Type\n"
        f"18/03/2024 14:05;{ann};12,50;Tip\n"
        f"18/03/2024 14:05;{ann};12,50;Tip\n"
        f"19/03/2024 09:00;nobody_{uuid.uuid4().hex[:8]};5,00;PPV\n"
    )

    first = await crm_import_transactions(database_url, tenant, path)
    second = await crm_import_transactions(database_url, tenant, path)

    unknown = {"row": 4, "error": "handle: no fan of this account has this handle"}
    assert first["status"] == "completed"
    assert first["summary"] == {
        "totalRows": 3,
        "successfulInserts": 2,
        "skipped": 0,
        "errors": [unknown],
        "errorCount": 1,
    }
    assert second["summary"] == {
        "totalRows": 3,
        "successfulInserts": 0,
        "skipped": 2,
        "errors": [unknown],
        "errorCount": 1,
    }


async def test_the_command_refuses_a_file_without_the_columns_it_needs(
    tenant: str, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "fans.csv"
    path.write_text("Username,Total Spent\nann,5\n")
    env = {**os.environ, "DATABASE_URL": database_url, "CRM_MASTER_KEY": TEST_MASTER_KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        "import",
        "transactions",
        str(path),
        "--user",
        tenant,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode != 0
    assert "a transactions file needs columns" in err.decode()
