"""`crm import transactions FILE.csv --user ID`: the same import as POST
/api/onlyfans/import/transactions, from a file on disk; the summary (JSON) on stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from adapters.cli_import import CHUNK_BYTES, cli_actor
from adapters.config import Settings
from adapters.csv_import.decoding import NotText
from adapters.csv_import.headers import MissingColumns
from adapters.csv_import.reader import EmptyFile
from adapters.csv_import.records import RowTooLong
from adapters.csv_import.transactions import transactions_upload
from application.context import CommandContext
from application.import_file import ImportFailed
from application.imports import StartImport
from application.transaction_import import import_transactions


async def import_transactions_command(args: argparse.Namespace, settings: Settings) -> None:
    from adapters import bootstrap

    path = Path(args.file)
    if not path.is_file():
        raise SystemExit(f"crm: no such file: {path}")
    upload = transactions_upload(_chunks(path))
    try:
        await upload.read_header()
    except (NotText, MissingColumns, EmptyFile, RowTooLong) as error:
        raise SystemExit(f"crm: {path.name}: {error}") from None
    container = await bootstrap.build(settings)
    ctx = CommandContext(tenant=args.user, actor=cli_actor(), correlation_id=uuid.uuid4().hex)
    start = StartImport(job_id=str(uuid.uuid4()), file_name=path.name, source="cli")
    print(f"import job {start.job_id}", file=sys.stderr, flush=True)
    try:
        job, position = await import_transactions(
            upload,
            start,
            ctx,
            events=container.events,
            imports=container.imports,
            batch_size=args.batch_size or settings.import_batch_size,
        )
    except ImportFailed as failed:
        raise SystemExit(
            f"crm: import {failed.job.job_id} stopped after {failed.job.total_rows:,} rows:"
            f" {failed}; importing the file again records only what is missing"
        ) from None
    finally:
        await container.close()
    summary = {
        "jobId": job.job_id,
        "status": job.status,
        "position": position,
        "summary": {
            "totalRows": job.total_rows,
            "successfulInserts": job.inserted,
            "skipped": job.skipped,
            "errors": [{"row": row, "error": error} for row, error in job.errors],
            "errorCount": job.error_count,
        },
    }
    print(msgspec.json.encode(summary).decode())


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk


def add_transactions_parser(imports: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    parser = imports.add_parser(
        "transactions",
        help="import past transactions (an earnings export) as purchases dated when they"
        " happened (idempotent)",
    )
    parser.add_argument("file", help="the CSV file: date, fan handle or id, amount, kind")
    parser.add_argument("--user", required=True, help="the user (tenant) the fans belong to")
    parser.add_argument("--batch-size", type=int, help="rows per committed batch")
    return parser
