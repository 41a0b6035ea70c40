"""/api/onlyfans/import: CSV import of fans (streamed multipart upload) and its history.

An Idempotency-Key on the import cannot be honoured as on other POSTs (a hash of the request
stored with the key before the command runs): the body is a stream of up to gigabytes that is
never held whole, and the import commits batch after batch, minutes long. Instead the key
decides the import job's id. The job is created in the import's first transaction, so a retry
with the key finds either no job (nothing committed: the import starts), an unfinished one (it
resumes after the last committed row, once the file shows the row committed there; 409 for
another file), or a completed one: the retried file is then read to its end and only hashed,
and the job's summary answers (``Idempotent-Replayed: true``) if its SHA-256 is the job's,
else 422 as for any key reused for another request.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from adapters.bootstrap import Container
from adapters.csv_import.decoding import NotText
from adapters.csv_import.headers import MissingColumns
from adapters.csv_import.multipart import FilePart, MultipartError, boundary_of
from adapters.csv_import.reader import CsvUpload, EmptyFile, TooLarge
from adapters.csv_import.records import RowTooLong
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import REPLAYED, idempotency_key, import_job_id_for
from adapters.http.openapi import multipart_file, responses_for
from adapters.http.permissions import requires
from adapters.http.problems import problem
from adapters.postgres.api_keys import Principal
from adapters.postgres.imports_read_model import ImportJobView
from application.context import CommandContext
from application.import_file import ImportFailed, import_file, import_file_once
from application.imports import StartImport
from application.permissions import Permission
from domain.errors import InvalidValue
from domain.import_job import ImportJob

Deps = NamedDependency[Container]


class RowErrorOut(msgspec.Struct, omit_defaults=True):
    row: int
    # The field and the reason, as the job records it.
    error: str
    # Only in the answer to the upload itself: the column as the file names it and the cell
    # that could not be read. The job never records a cell (see csv_import.values.BadCell).
    column: str | None = None
    value: str | None = None


class SummaryOut(msgspec.Struct, kw_only=True, rename="camel"):
    total_rows: int
    successful_inserts: int
    updated: int
    skipped: int
    errors: list[RowErrorOut]
    # errors lists the first 1,000; this counts them all.
    error_count: int

    @classmethod
    def of(cls, job: ImportJob, rejected: dict[int, tuple[str, str]] | None = None) -> SummaryOut:
        cells = rejected or {}
        return cls(
            total_rows=job.total_rows,
            successful_inserts=job.inserted,
            updated=job.updated,
            skipped=job.skipped,
            errors=[RowErrorOut(row, error, *cells.get(row, ())) for row, error in job.errors],
            error_count=job.error_count,
        )


class ImportOut(msgspec.Struct, kw_only=True, rename="camel"):
    job_id: str
    status: str
    summary: SummaryOut
    position: int
    # Header names that matched no fan field: their cells were not imported.
    ignored_columns: list[str]


class ImportJobOut(msgspec.Struct, kw_only=True, rename="camel"):
    job_id: str
    file_name: str
    source: str
    actor: str
    status: str
    summary: SummaryOut
    size_bytes: int | None
    checksum_sha256: str | None
    failure: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, view: ImportJobView) -> ImportJobOut:
        return cls(
            job_id=view.job_id,
            file_name=view.file_name,
            source=view.source,
            actor=view.actor,
            status=view.status,
            summary=SummaryOut(
                total_rows=view.inserted + view.updated + view.skipped + view.error_count,
                successful_inserts=view.inserted,
                updated=view.updated,
                skipped=view.skipped,
                errors=[RowErrorOut(e["row"], e["error"]) for e in view.errors],
                error_count=view.error_count,
            ),
            size_bytes=view.size_bytes,
            checksum_sha256=view.checksum_sha256,
            failure=view.failure,
            started_at=view.started_at,
            finished_at=view.finished_at,
        )


class ImportJobListOut(msgspec.Struct, kw_only=True, rename="camel"):
    jobs: list[ImportJobOut]
    next_cursor: str | None


class ImportsController(Controller):
    path = "/api/onlyfans/import"
    tags = ["import"]

    # No framework body limit: the upload is streamed and CRM_IMPORT_MAX_BYTES is enforced
    # here as it arrives (the app-wide limit is for JSON bodies).
    @post(
        "/csv",
        request_max_body_size=None,
        status_code=200,
        **requires(Permission.IMPORT),
        **responses_for(
            body=True,
            idempotent=True,
            success={200: ImportOut},
            why={
                400: "Not CSV text, empty, or missing required columns (`missing`, `found`)",
                409: "resumeJobId: the file does not match the job's committed rows; or an"
                " Idempotency-Key's outcome is unknown",
                413: "The upload is over CRM_IMPORT_MAX_BYTES (`jobId`, `summary`: what was"
                " committed)",
            },
            request_body=multipart_file(
                "file", "The spreadsheet, as CSV text (UTF-8, UTF-16 or Windows-1252)"
            ),
        ),
    )
    async def import_csv(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        resume_job_id: Annotated[
            str | None,
            QueryParameter(
                name="resumeJobId", description="Continue an interrupted import of this file."
            ),
        ] = None,
    ) -> Response[Any]:
        key = idempotency_key(request)
        limit = container.settings.import_max_bytes
        announced = request.headers.get("content-length", "")
        if announced.isascii() and announced.isdigit() and int(announced) > limit:
            return too_large(limit)
        try:
            part = FilePart(
                limited_stream(request.stream(), limit), boundary_of(_content_type(request))
            )
            await part.open()
            upload = CsvUpload(part.content())
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
        if key is not None:
            return await _import_once(container, upload, part, ctx, key, resume_job_id)
        start = StartImport(
            job_id=resume_job_id or str(uuid.uuid4()), file_name=part.filename or "", source="http"
        )
        try:
            job, position = await import_file(
                upload,
                start,
                ctx,
                events=container.events,
                imports=container.imports,
                resume=resume_job_id is not None,
                batch_size=container.settings.import_batch_size,
            )
        except ImportFailed as failed:
            return _failed(failed, limit, upload.rejected)
        return _imported(upload, job, position)

    @get("/jobs", **requires(Permission.READ), **responses_for(lagging=True))
    async def list_jobs(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> ImportJobListOut:
        await read_your_writes(request, container, ["import_jobs"])
        page = await container.import_jobs.list_jobs(
            request.user.user_id, limit=limit, cursor=cursor
        )
        return ImportJobListOut(
            jobs=[ImportJobOut.of(view) for view in page.jobs], next_cursor=page.next_cursor
        )


async def _import_once(
    container: Container,
    upload: CsvUpload,
    part: FilePart,
    ctx: CommandContext,
    key: str,
    resume_job_id: str | None,
) -> Response[Any]:
    """With an Idempotency-Key the key decides the job (``import_file_once`` says how a retry
    resumes it or is answered its summary), so nothing of the upload is ever held to hash it:
    the job's SHA-256, computed while the first upload streamed, tells the same file."""
    job_id = import_job_id_for(ctx.tenant, key)
    if resume_job_id is not None and resume_job_id != job_id:
        raise InvalidValue("resume_job_id", "is not the job of this Idempotency-Key")
    start = StartImport(job_id=job_id, file_name=part.filename or "", source="http")
    limit = container.settings.import_max_bytes
    try:
        job, position, replayed = await import_file_once(
            upload,
            start,
            ctx,
            events=container.events,
            imports=container.imports,
            batch_size=container.settings.import_batch_size,
        )
    except ImportFailed as failed:
        return _failed(failed, limit, upload.rejected)
    except TooLarge:
        return too_large(limit)
    except MultipartError as error:
        return problem(400, str(error), slug="invalid-csv")
    response = _imported(upload, job, position)
    if replayed:
        response.headers[REPLAYED] = "true"
    return response


def _imported(upload: CsvUpload, job: ImportJob, position: int) -> Response[Any]:
    assert upload.columns is not None
    return Response(
        ImportOut(
            job_id=job.job_id,
            status=job.status,
            summary=SummaryOut.of(job, upload.rejected),
            position=position,
            ignored_columns=list(upload.columns.ignored),
        )
    )


def _content_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "")


async def limited_stream(stream: Any, limit: int) -> Any:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise TooLarge(limit)
        yield chunk


def too_large(limit: int, **extra: Any) -> Response[Any]:
    return problem(413, f"the upload is larger than the {limit}-byte import limit", **extra)


def _failed(
    failed: ImportFailed, limit: int, rejected: dict[int, tuple[str, str]]
) -> Response[Any]:
    """A job stopped mid-file: what was committed stays counted, and the job is resumable."""
    job = failed.job
    extra = {"jobId": job.job_id, "summary": msgspec.to_builtins(SummaryOut.of(job, rejected))}
    match failed.cause:
        case TooLarge():
            return too_large(limit, **extra)
        case MultipartError() | RowTooLong() | NotText():
            return problem(400, str(failed.cause), slug="invalid-csv", **extra)
    raise failed.cause
