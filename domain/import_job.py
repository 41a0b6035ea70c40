"""The ImportJob aggregate: who imported which file, how far it got, and what came of it.

A job advances one committed batch at a time: each ``BatchImported`` is appended in the same
transaction as the fans' events of that batch, so the job's counts always equal what the log
holds (never half-counted). A job interrupted mid-file (crash, lost connection, database
restart) stays ``running`` or is marked ``failed``; either way it can be resumed after its
last committed row.
"""

from __future__ import annotations

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import IllegalState, InvalidValue

# The history keeps the first errors of a job; the count stays exact beyond them.
MAX_RECORDED_ERRORS = 1000
MAX_FILE_NAME = 255
# "patreon": a member sync (application/patreon_sync.py), its pages recorded as batches.
SOURCES = frozenset({"http", "cli", "patreon"})


def import_stream_id(job_id: str) -> str:
    return f"import-{job_id}"


class ImportJob(BaseAggregate[str]):
    @staticmethod
    def create_id(job_id: str) -> str:
        return import_stream_id(job_id)

    class Event(DomainEvent):
        pass

    class Started(Event, AggregateCreated):
        job_id: str
        tenant: str
        file_name: str
        source: str

    class BatchImported(Event):
        first_row: int
        last_row: int
        inserted: int
        updated: int
        skipped: int
        error_count: int
        # (spreadsheet row, why) of this batch's errors, up to the job's recorded maximum.
        errors: tuple[tuple[int, str], ...]
        # A digest of the batch's last row as read: a resumed job checks it meets the same
        # row at that number in the file it is given. Empty in events recorded before.
        last_row_digest: str = ""

    class Completed(Event):
        size_bytes: int
        checksum_sha256: str

    class Failed(Event):
        reason: str
        size_bytes: int

    class Resumed(Event):
        pass

    @classmethod
    def start(cls, *, job_id: str, tenant: str, file_name: str, source: str) -> ImportJob:
        if source not in SOURCES:
            raise InvalidValue("source", f"must be one of {', '.join(sorted(SOURCES))}")
        name = (file_name or "").strip().replace("\x00", "")[:MAX_FILE_NAME] or "upload.csv"
        return cls(job_id=job_id, tenant=tenant, file_name=name, source=source)

    @event(Started)
    def __init__(self, job_id: str, tenant: str, file_name: str, source: str) -> None:
        self.job_id = job_id
        self.tenant = tenant
        self.file_name = file_name
        self.source = source
        self.status = "running"
        self.last_row = 1  # the header is row 1
        self.last_row_digest = ""
        self.inserted = self.updated = self.skipped = self.error_count = 0
        self.errors: list[tuple[int, str]] = []
        self.size_bytes: int | None = None
        self.checksum_sha256: str | None = None
        self.failure: str | None = None

    @property
    def total_rows(self) -> int:
        return self.inserted + self.updated + self.skipped + self.error_count

    def record_batch(
        self,
        *,
        first_row: int,
        last_row: int,
        inserted: int,
        updated: int,
        skipped: int,
        errors: list[tuple[int, str]],
        last_row_digest: str = "",
    ) -> None:
        self._require_running()
        if first_row <= self.last_row or last_row < first_row:
            raise IllegalState(
                f"rows {first_row}-{last_row} of import {self.job_id}"
                f" do not follow its row {self.last_row}"
            )
        room = max(0, MAX_RECORDED_ERRORS - len(self.errors))
        self._batch_imported(
            first_row=first_row,
            last_row=last_row,
            inserted=inserted,
            updated=updated,
            skipped=skipped,
            error_count=len(errors),
            errors=tuple(errors[:room]),
            last_row_digest=last_row_digest,
        )

    @event(BatchImported)
    def _batch_imported(
        self,
        first_row: int,
        last_row: int,
        inserted: int,
        updated: int,
        skipped: int,
        error_count: int,
        errors: tuple[tuple[int, str], ...],
        last_row_digest: str = "",
    ) -> None:
        self.last_row = last_row
        self.last_row_digest = last_row_digest
        self.inserted += inserted
        self.updated += updated
        self.skipped += skipped
        self.error_count += error_count
        self.errors.extend((int(row), str(why)) for row, why in errors)

    def confirm_same_file(self, last_row_digest: str) -> None:
        """On resuming: the file given holds, at the job's last committed row, the row the job
        committed there (its digest; empty if the file has no such row)."""
        if last_row_digest != self.last_row_digest:
            raise IllegalState(
                f"this is not the file import {self.job_id} was importing:"
                f" its row {self.last_row} is not the row the import committed there"
            )

    def complete(self, *, size_bytes: int, checksum_sha256: str) -> None:
        self._require_running()
        self._completed(size_bytes=size_bytes, checksum_sha256=checksum_sha256)

    @event(Completed)
    def _completed(self, size_bytes: int, checksum_sha256: str) -> None:
        self.status = "completed"
        self.size_bytes = size_bytes
        self.checksum_sha256 = checksum_sha256

    def fail(self, *, reason: str, size_bytes: int) -> None:
        self._require_running()
        self._failed(reason=reason[:500], size_bytes=size_bytes)

    @event(Failed)
    def _failed(self, reason: str, size_bytes: int) -> None:
        self.status = "failed"
        self.failure = reason
        self.size_bytes = size_bytes

    def resume(self) -> None:
        """Continue after the last committed row: a crashed (running) or failed job."""
        if self.status == "completed":
            raise IllegalState(f"import {self.job_id} is already complete")
        self._resumed()

    @event(Resumed)
    def _resumed(self) -> None:
        self.status = "running"
        self.failure = None

    def _require_running(self) -> None:
        if self.status != "running":
            raise IllegalState(f"import {self.job_id} is {self.status}")
