"""The import history read model: one row per import job, for GET /api/onlyfans/import/jobs."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.events import EVENT_TYPES
from domain.import_job import ImportJob

_STARTED = """
INSERT INTO import_jobs (job_id, tenant_id, file_name, source, actor, status, started_at,
                         updated_at, version)
VALUES ($1, $2, $3, $4, $5, 'running', $6, $6, $7)
ON CONFLICT (job_id) DO NOTHING
"""

_BATCH = """
UPDATE import_jobs SET last_row = $2, inserted = inserted + $3, updated = updated + $4,
       skipped = skipped + $5, error_count = error_count + $6, errors = errors || $7::jsonb,
       updated_at = $8, version = $9
WHERE job_id = $1
"""

_FINISHED = """
UPDATE import_jobs SET status = $2, size_bytes = $3, checksum_sha256 = $4, failure = $5,
       finished_at = $6, updated_at = $6, version = $7
WHERE job_id = $1
"""


# By exact class (see projections.base).
_IMPORT_EVENTS = frozenset(cls for cls in EVENT_TYPES.values() if issubclass(cls, ImportJob.Event))


class ImportJobsProjection:
    name = "import_jobs"
    tables = ("import_jobs",)

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        """Import jobs are a handful of events in a log of millions: skip the rest at once."""
        for recorded in [r for r in batch if type(r.event) in _IMPORT_EVENTS]:
            await self.apply(sql, recorded)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        event = recorded.event
        job_id = recorded.stream_id.removeprefix("import-")
        if isinstance(event, ImportJob.Started):
            await sql.execute(
                _STARTED,
                job_id,
                event.tenant,
                event.file_name,
                event.source,
                recorded.metadata.actor,
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, ImportJob.BatchImported):
            await sql.execute(
                _BATCH,
                job_id,
                event.last_row,
                event.inserted,
                event.updated,
                event.skipped,
                event.error_count,
                [{"row": row, "error": error} for row, error in event.errors],
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, ImportJob.Completed):
            await sql.execute(
                _FINISHED,
                job_id,
                "completed",
                event.size_bytes,
                event.checksum_sha256,
                None,
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, ImportJob.Failed):
            await sql.execute(
                _FINISHED,
                job_id,
                "failed",
                event.size_bytes,
                None,
                event.reason,
                event.timestamp,
                recorded.version,
            )
        elif isinstance(event, ImportJob.Resumed):
            await sql.execute(
                "UPDATE import_jobs SET status = 'running', failure = NULL, finished_at = NULL,"
                " updated_at = $2, version = $3 WHERE job_id = $1",
                job_id,
                event.timestamp,
                recorded.version,
            )
