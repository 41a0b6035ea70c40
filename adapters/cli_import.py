"""`crm import fans FILE.csv --user ID`: the same import as POST /api/onlyfans/import/csv, from
a file on disk, with a progress bar on stderr and the summary (JSON) on stdout."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import msgspec

from adapters.config import Settings
from adapters.csv_import.decoding import NotText
from adapters.csv_import.headers import MissingColumns
from adapters.csv_import.reader import CsvUpload, EmptyFile
from adapters.csv_import.records import RowTooLong
from application.context import CommandContext
from application.import_file import ImportFailed, import_file
from application.imports import StartImport
from domain.import_job import ImportJob

CHUNK_BYTES = 1 << 20


def cli_actor() -> str:
    """Who runs a command from the shell, as the events' metadata records it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in this environment
        return "cli"


class ProgressBar:
    """One line on stderr, redrawn after every committed batch."""

    def __init__(self, total_bytes: int, out: IO[str] = sys.stderr, width: int = 30) -> None:
        self.total = max(total_bytes, 1)
        self.read = 0
        self.out = out
        self.width = width
        self.started = time.monotonic()

    def draw(self, job: ImportJob) -> None:
        share = min(self.read / self.total, 1.0)
        filled = int(share * self.width)
        rate = job.total_rows / max(time.monotonic() - self.started, 1e-6)
        self.out.write(
            f"\r[{'#' * filled}{'-' * (self.width - filled)}] {share:4.0%} {job.total_rows:,} rows"
            f" ({rate:,.0f}/s)  inserted {job.inserted:,} updated {job.updated:,}"
            f" skipped {job.skipped:,} errors {job.error_count:,}"
        )
        self.out.flush()

    def done(self) -> None:
        self.out.write("\n")
        self.out.flush()


async def import_fans(args: argparse.Namespace, settings: Settings) -> None:
    from adapters import bootstrap

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"crm: no such file: {path}")
    bar = ProgressBar(path.stat().st_size)
    upload = CsvUpload(_chunks(path, bar))
    try:
        await upload.read_header()
    except (NotText, MissingColumns, EmptyFile, RowTooLong) as error:
        raise SystemExit(f"crm: {path.name}: {error}") from None
    container = await bootstrap.build(settings)
    ctx = CommandContext(tenant=args.user, actor=cli_actor(), correlation_id=uuid.uuid4().hex)
    start = StartImport(job_id=args.resume or str(uuid.uuid4()), file_name=path.name, source="cli")
    print(f"import job {start.job_id}", file=sys.stderr, flush=True)

    async def on_batch(job: ImportJob) -> None:
        bar.draw(job)
        if args.pause:
            await asyncio.sleep(args.pause)

    try:
        job, position = await import_file(
            upload,
            start,
            ctx,
            events=container.events,
            imports=container.imports,
            resume=args.resume is not None,
            batch_size=args.batch_size or settings.import_batch_size,
            on_batch=on_batch,
        )
    except ImportFailed as failed:
        bar.done()
        raise SystemExit(
            f"crm: import {failed.job.job_id} stopped after {failed.job.total_rows:,} rows:"
            f" {failed}; continue it with --resume {failed.job.job_id}"
        ) from None
    finally:
        await container.close()
    bar.done()
    summary = {
        "jobId": job.job_id,
        "status": job.status,
        "position": position,
        "summary": {
            "totalRows": job.total_rows,
            "successfulInserts": job.inserted,
            "updated": job.updated,
            "skipped": job.skipped,
            "errors": [{"row": row, "error": error} for row, error in job.errors],
            "errorCount": job.error_count,
        },
    }
    print(msgspec.json.encode(summary).decode())


async def _chunks(path: Path, bar: ProgressBar) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            bar.read += len(chunk)
            yield chunk


def add_import_parser(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """`crm import ...`: the subcommands' parsers hang from what this returns."""
    return commands.add_parser("import", help="import data").add_subparsers(
        dest="action", required=True
    )


def add_fans_parser(imports: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    fans = imports.add_parser("fans", help="import fans from a CSV file (idempotent)")
    fans.add_argument("file", help="the CSV file (UTF-8 or UTF-16, , ; tab or | separated)")
    fans.add_argument("--user", required=True, help="the user (tenant) the fans belong to")
    fans.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted import job")
    fans.add_argument("--batch-size", type=int, help="rows per committed batch")
    # Slows the import down between batches: lets the crash test kill it mid-file.
    fans.add_argument("--pause", type=float, default=0.0, help=argparse.SUPPRESS)
    return fans
