"""Helpers for the tests of POST /api/onlyfans/import/csv: upload a file, read its summary,
say the summary expected, check a refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

IMPORT = "/api/onlyfans/import/csv"
JOBS = "/api/onlyfans/import/jobs"
FANS = "/api/crm/fans"
Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]


async def upload(
    http: httpx.AsyncClient, auth: Headers, content: bytes, name: str = "fans.csv", **params: Any
) -> httpx.Response:
    return await http.post(
        IMPORT, files={"file": (name, content, "text/csv")}, headers=auth, params=params
    )


def summary(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["summary"]


def expected(
    total: int, inserted: int, updated: int = 0, skipped: int = 0, errors: Any = ()
) -> dict[str, Any]:
    # (row, error), or (row, error, column, cell) for a cell the upload's answer shows.
    errors = [
        dict(zip(("row", "error", "column", "value"), error, strict=False)) for error in errors
    ]
    return {
        "totalRows": total,
        "successfulInserts": inserted,
        "updated": updated,
        "skipped": skipped,
        "errors": errors,
        "errorCount": len(errors),
    }


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """A refusal: this status, as problem+json with a detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body
