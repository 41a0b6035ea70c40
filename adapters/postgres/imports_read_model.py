"""Hand-written SQL over the import history read table; keyset pagination, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor


class ImportJobView(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    file_name: str
    source: str
    actor: str
    status: str
    inserted: int
    updated: int
    skipped: int
    error_count: int
    errors: list[dict[str, Any]]
    size_bytes: int | None
    checksum_sha256: str | None
    failure: str | None
    started_at: datetime
    finished_at: datetime | None


class ImportJobPage(msgspec.Struct, frozen=True):
    jobs: list[ImportJobView]
    next_cursor: str | None


_SELECT = """
SELECT job_id, file_name, source, actor, status, inserted, updated, skipped, error_count,
       errors, size_bytes, checksum_sha256, failure, started_at, finished_at
FROM import_jobs WHERE tenant_id = $1
"""


class PostgresImportJobsReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_jobs(self, tenant: str, *, limit: int, cursor: str | None) -> ImportJobPage:
        args: list[Any] = [tenant, limit + 1]
        where = ""
        if cursor:
            started_at, job_id = decode_cursor(cursor, tuple[datetime, str])
            args += [started_at, job_id]
            where = " AND (started_at, job_id) < ($3, $4)"
        rows = await self._pool.fetch(
            _SELECT + where + " ORDER BY started_at DESC, job_id DESC LIMIT $2", *args
        )
        jobs = [ImportJobView(**dict(row)) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = jobs[-1]
            next_cursor = encode_cursor(last.started_at, last.job_id)
        return ImportJobPage(jobs, next_cursor)
