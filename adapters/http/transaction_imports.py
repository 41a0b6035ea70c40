"""POST /api/onlyfans/import/transactions: an earnings or transactions export (streamed
multipart upload, as the fan import's) imported as purchases dated when they happened.

The import itself is idempotent (each transaction is recorded once,
application/transaction_import.py): a retried upload records nothing new, and answers the
transactions as skipped. An Idempotency-Key decides the job's id, as for the fan import
(adapters/http/imports.py), so a retry with it is answered the first import's summary.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency

from adapters.bootstrap import Container
from adapters.csv_import.decoding import NotText
from adapters.csv_import.headers import MissingColumns
from adapters.csv_import.multipart import FilePart, MultipartError, boundary_of
from adapters.csv_import.reader import CsvUpload, EmptyFile, TooLarge
from adapters.csv_import.records import RowTooLong
from adapters.csv_import.transactions import transactions_upload
from adapters.http.context import command_context
from adapters.http.idempotency import REPLAYED, idempotency_key, import_job_id_for
from adapters.http.imports import RowErrorOut, limited_stream, too_large
from adapters.http.openapi import multipart_file, responses_for
from adapters.http.permissions import requires
from adapters.http.problems import problem
from adapters.postgres.api_keys import Principal
from application.import_file import ImportFailed
from application.imports import StartImport
from application.permissions import Permission
from application.transaction_import import import_transactions_once
from domain.import_job import ImportJob

Deps = NamedDependency[Container]


class TransactionSummaryOut(msgspec.Struct, kw_only=True, rename="camel"):
    total_rows: int
    successful_inserts: int
    # Transactions recorded by an earlier import of them.
    skipped: int
    errors: list[RowErrorOut]
    error_count: int

    @classmethod
    def of(cls, job: ImportJob, upload: CsvUpload) -> TransactionSummaryOut:
        return cls(
            total_rows=job.total_rows,
            successful_inserts=job.inserted,
            skipped=job.skipped,
            errors=[_error_out(row, error, upload) for row, error in job.errors],
            error_count=job.error_count,
        )


class TransactionImportOut(msgspec.Struct, kw_only=True, rename="camel"):
    job_id: str
    status: str
    summary: TransactionSummaryOut
    position: int
    ignored_columns: list[str]


class TransactionImportsController(Controller):
    path = "/api/onlyfans/import"
    tags = ["import"]

    @post(
        "/transactions",
        request_max_body_size=None,
        status_code=200,
        **requires(Permission.IMPORT),
        **responses_for(
            body=True,
            idempotent=True,
            success={200: TransactionImportOut},
            why={
                400: "Not CSV text, empty, or missing required columns (`missing`, `found`)",
                409: "The import of this Idempotency-Key stopped before its end: import the"
                " file again without it",
                413: "The upload is over CRM_IMPORT_MAX_BYTES (`jobId`, `summary`: what was"
                " committed)",
            },
            request_body=multipart_file(
                "file",
                "An earnings export, as CSV text: one row per transaction with its date and"
                " time (UTC unless it carries a zone), the fan's handle or platform id, the"
                " amount and the kind (subscription, renewal, tip, ppv, post)",
            ),
        ),
    )
    async def import_transactions(
        self, request: Request[Principal, Any, Any], container: Deps
    ) -> Response[Any]:
        limit = container.settings.import_max_bytes
        announced = request.headers.get("content-length", "")
        if announced.isascii() and announced.isdigit() and int(announced) > limit:
            return too_large(limit)
        try:
            content_type = request.headers.get("content-type", "")
            part = FilePart(limited_stream(request.stream(), limit), boundary_of(content_type))
            await part.open()
            upload = transactions_upload(part.content())
            await upload.read_header()
        except TooLarge:
            return too_large(limit)
        except MissingColumns as error:
            return problem(
                400, str(error), slug="missing-columns", missing=error.missing, found=error.found
            )
        except (MultipartError, NotText, EmptyFile, RowTooLong) as error:
            return problem(400, str(error), slug="invalid-csv")
        ctx = command_context(request)
        key = idempotency_key(request)
        job_id = str(uuid.uuid4()) if key is None else _job_id_for(ctx.tenant, key)
        start = StartImport(job_id=job_id, file_name=part.filename or "", source="http")
        try:
            job, position, replayed = await import_transactions_once(
                upload,
                start,
                ctx,
                events=container.events,
                imports=container.imports,
                batch_size=container.settings.import_batch_size,
            )
        except ImportFailed as failed:
            return _failed(failed, limit, upload)
        except TooLarge:
            return too_large(limit)
        except MultipartError as error:
            return problem(400, str(error), slug="invalid-csv")
        response = Response(
            TransactionImportOut(
                job_id=job.job_id,
                status=job.status,
                summary=TransactionSummaryOut.of(job, upload),
                position=position,
                ignored_columns=list(upload.columns.ignored),
            )
        )
        if replayed:
            response.headers[REPLAYED] = "true"
        return response


def _job_id_for(tenant: str, key: str) -> str:
    # Apart from the fan import's jobs: one key may name one import of each.
    return import_job_id_for(tenant, f"transactions\x00{key}")


def _error_out(row: int, error: str, upload: CsvUpload) -> RowErrorOut:
    """A row's error; in this answer only, the column as the file names it and the cell."""
    cell = upload.rejected.get(row)
    if cell is not None:
        return RowErrorOut(row, error, *cell)
    field = error.split(":", 1)[0]
    # An unknown fan: name the column it was looked up by (the cell is the fan's handle).
    names = upload.columns.names if upload.columns is not None else {}
    column = names.get({"platformId": "platform_id"}.get(field, field))
    return RowErrorOut(row, error, column)


def _failed(failed: ImportFailed, limit: int, upload: CsvUpload) -> Response[Any]:
    job = failed.job
    summary = msgspec.to_builtins(TransactionSummaryOut.of(job, upload))
    extra = {"jobId": job.job_id, "summary": summary}
    match failed.cause:
        case TooLarge():
            return too_large(limit, **extra)
        case MultipartError() | RowTooLong() | NotText():
            return problem(400, str(failed.cause), slug="invalid-csv", **extra)
    raise failed.cause
