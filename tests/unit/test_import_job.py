"""The ImportJob aggregate: progress one committed batch at a time, then done, failed or
resumed. Given events, when a command, then events or an error."""

from __future__ import annotations

import pytest

from domain.errors import IllegalState, InvalidValue
from domain.import_job import MAX_RECORDED_ERRORS, ImportJob


def started() -> ImportJob:
    return ImportJob.start(job_id="j1", tenant="t1", file_name=" fans.csv ", source="http")


def test_a_job_starts_running_after_the_header_row() -> None:
    job = started()
    assert (job.id, job.status, job.file_name, job.last_row, job.total_rows) == (
        "import-j1",
        "running",
        "fans.csv",
        1,
        0,
    )
    assert [type(e) for e in job.collect_events()] == [ImportJob.Started]


def test_batches_add_up_and_move_the_last_row() -> None:
    job = started()
    job.record_batch(first_row=2, last_row=10, inserted=5, updated=1, skipped=2, errors=[(7, "x")])
    job.record_batch(first_row=12, last_row=12, inserted=1, updated=0, skipped=0, errors=[])
    assert (job.last_row, job.inserted, job.updated, job.skipped, job.error_count) == (
        12,
        6,
        1,
        2,
        1,
    )
    assert job.total_rows == 10
    assert job.errors == [(7, "x")]


def test_a_batch_that_does_not_follow_the_last_committed_row_is_refused() -> None:
    job = started()
    job.record_batch(first_row=2, last_row=10, inserted=9, updated=0, skipped=0, errors=[])
    with pytest.raises(IllegalState):
        job.record_batch(first_row=5, last_row=20, inserted=1, updated=0, skipped=0, errors=[])


def test_only_the_first_errors_are_kept_but_all_are_counted() -> None:
    job = started()
    many = [(row, "bad") for row in range(2, MAX_RECORDED_ERRORS + 102)]
    job.record_batch(
        first_row=2, last_row=many[-1][0], inserted=0, updated=0, skipped=0, errors=many
    )
    assert len(job.errors) == MAX_RECORDED_ERRORS
    assert job.error_count == len(many)


def test_a_finished_job_takes_no_more_batches_and_a_completed_one_cannot_resume() -> None:
    job = started()
    job.complete(size_bytes=10, checksum_sha256="ab")
    with pytest.raises(IllegalState):
        job.record_batch(first_row=2, last_row=2, inserted=1, updated=0, skipped=0, errors=[])
    with pytest.raises(IllegalState):
        job.resume()


def test_a_failed_job_resumes_where_it_stopped() -> None:
    job = started()
    job.record_batch(first_row=2, last_row=5, inserted=4, updated=0, skipped=0, errors=[])
    job.fail(reason="upload cut short", size_bytes=100)
    assert (job.status, job.failure) == ("failed", "upload cut short")
    job.resume()
    assert (job.status, job.last_row, job.inserted) == ("running", 5, 4)


def test_a_job_replays_to_the_same_state() -> None:
    job = started()
    job.record_batch(first_row=2, last_row=5, inserted=4, updated=0, skipped=0, errors=[(3, "e")])
    job.complete(size_bytes=1, checksum_sha256="c")
    replayed = None
    for event in job.collect_events():
        replayed = event.mutate(replayed)
    assert replayed is not None
    assert vars(replayed) == vars(job)


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(InvalidValue):
        ImportJob.start(job_id="j", tenant="t", file_name="f", source="ftp")
