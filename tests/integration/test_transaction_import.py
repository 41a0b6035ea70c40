"""POST /api/onlyfans/import/transactions over real HTTP: each transaction recorded once however
often the file is imported, counted on the fan's value and on the day it happened; an unknown
fan (another account's included) is a row error; a bad file records nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from application.ports import Checkpoint
from projections.runner import ProjectionRunner
from tests.support.imports import CatchUp, Headers, assert_problem

pytestmark = pytest.mark.timeout(60)

IMPORT = "/api/onlyfans/import/transactions"


async def upload(http: httpx.AsyncClient, auth: Headers, content: bytes) -> httpx.Response:
    return await http.post(
        IMPORT, files={"file": ("earnings.csv", content, "text/csv")}, headers=auth
    )


async def new_fan(http: httpx.AsyncClient, auth: Headers, **fields: Any) -> dict[str, Any]:
    response = await http.post("/api/crm/fans", json=fields, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["fan"]


async def fan_value(http: httpx.AsyncClient, auth: Headers, fan_id: int) -> int:
    body = (await http.get(f"/api/crm/fans/{fan_id}", headers=auth)).json()
    return body["fan"]["valueCents"]


async def revenue_days(http: httpx.AsyncClient, auth: Headers) -> list[tuple[int, str, int, int]]:
    body = (await http.get("/api/analytics/fans/revenue", headers=auth)).json()
    return sorted((d["fanId"], d["day"], d["revenueCents"], d["purchases"]) for d in body["days"])


@pytest.fixture
def catch_up_all(container: bootstrap.Container, catch_up: CatchUp) -> CatchUp:
    """``catch_up``, then the analytics projectors too (they run apart from the core ones)."""

    async def run() -> int:
        total = await catch_up()
        row = await container.pool.fetchrow(
            "SELECT transaction_id, position FROM events"
            " ORDER BY transaction_id DESC, position DESC LIMIT 1"
        )
        head = Checkpoint(row["transaction_id"], row["position"])
        deadline = time.monotonic() + 50
        for projection in bootstrap.analytics_projections():
            runner = ProjectionRunner(container.projection_store, projection)
            total += await runner.catch_up()
            while await container.projection_store.checkpoint(runner.name) < head:
                assert time.monotonic() < deadline, f"{runner.name} never reached {head}"
                await asyncio.sleep(0.01)
                total += await runner.catch_up()
        return total

    return run


async def cohort_spend(http: httpx.AsyncClient, auth: Headers) -> tuple[int, int]:
    cohorts = (await http.get("/api/analytics/cohorts", headers=auth)).json()["cohorts"]
    return sum(c["spendCents"] for c in cohorts), sum(c["purchases"] for c in cohorts)


def handle() -> str:
    return f"fan_{uuid.uuid4().hex[:10]}"


async def test_a_file_imported_twice_records_each_transaction_once_on_the_day_it_happened(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, catch_up_all: CatchUp
) -> None:
    ann = handle()
    first = await new_fan(http, auth, handle=ann)
    # Named, not handled: the platform id of an API-made fan with a handle is not indexed
    # (reported; the fan import shares it).
    second = await new_fan(http, auth, name="Bob", platformId=f"of-{uuid.uuid4().hex[:8]}")
    # An API-made fan's platform id is indexed from the fans read model (application/imports).
    await catch_up()
    # Two identical tips in one second are two transactions; a naive time is UTC, a zoned
    # one is moved to UTC (23:30 at -02:00 is the next day).
    content = (
        "Date,Username,Fan ID,Amount,Type\n"
        f"2023-05-01 10:00:00,{ann},,$12.50,Tip\n"
        f"2023-05-01 10:00:00,{ann},,$12.50,Tip\n"
        f'2023-05-01T23:30:00-02:00,@{ann},,"1.000,00",Paid message\n'
        f"2022-12-31 08:00,,{second['platformId']},9.99,Subscription\n"
        f"2023-01-31 08:00,,{second['platformId']},9.99,Rebill\n"
    ).encode()

    answer = await upload(http, auth, content)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed"
    assert body["summary"] == {
        "totalRows": 5,
        "successfulInserts": 5,
        "skipped": 0,
        "errors": [],
        "errorCount": 0,
    }
    again = (await upload(http, auth, content)).json()
    assert again["summary"]["successfulInserts"] == 0
    assert again["summary"]["skipped"] == 5

    await catch_up_all()
    assert await fan_value(http, auth, first["id"]) == 1250 + 1250 + 100000
    assert await fan_value(http, auth, second["id"]) == 999 + 999
    assert await revenue_days(http, auth) == [
        (first["id"], "2023-05-01", 2500, 2),
        (first["id"], "2023-05-02", 100000, 1),
        (second["id"], "2022-12-31", 999, 1),
        (second["id"], "2023-01-31", 999, 1),
    ]
    assert await cohort_spend(http, auth) == (102500 + 1998, 5)


async def test_two_imports_of_one_file_at_once_record_each_transaction_once(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    ann = handle()
    fan = await new_fan(http, auth, handle=ann)
    rows = "".join(f"2023-05-01 10:00:{second:02d},{ann},1.00,tip\n" for second in range(50))
    content = f"Date,Username,Amount,Type\n{rows}".encode()

    answers = await asyncio.gather(upload(http, auth, content), upload(http, auth, content))

    summaries = [answer.json()["summary"] for answer in answers]
    assert sum(s["successfulInserts"] for s in summaries) == 50
    assert sum(s["skipped"] for s in summaries) == 50
    await catch_up()
    assert await fan_value(http, auth, fan["id"]) == 5000


async def test_a_transaction_id_column_makes_rows_the_same_transaction_whatever_else_changes(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    ann = handle()
    await new_fan(http, auth, handle=ann)
    header = "Date,Username,Amount,Type,Transaction ID\n"
    first = await upload(http, auth, f"{header}2023-05-01,{ann},5,tip,tx-1\n".encode())
    # The same id re-exported with another time format: still the one transaction.
    later = await upload(http, auth, f"{header}05/01/2023 00:00,{ann},5,tip,tx-1\n".encode())
    assert first.json()["summary"]["successfulInserts"] == 1
    assert later.json()["summary"]["skipped"] == 1


async def test_an_idempotency_key_answers_its_first_summary_and_refuses_another_file(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    ann = handle()
    await new_fan(http, auth, handle=ann)
    content = f"Date,Username,Amount,Type\n2023-05-01,{ann},5,tip\n".encode()
    keyed = auth | {"Idempotency-Key": uuid.uuid4().hex}

    first = await upload(http, keyed, content)
    retry = await upload(http, keyed, content)
    other = await upload(http, keyed, content + f"2023-05-02,{ann},5,tip\n".encode())

    assert first.json()["summary"]["successfulInserts"] == 1
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert (retry.json()["jobId"], retry.json()["summary"]) == (
        first.json()["jobId"],
        first.json()["summary"],
    )
    assert_problem(other, 422)


async def test_an_unknown_fan_is_a_row_error_naming_its_column_and_other_rows_are_imported(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    catch_up_all: CatchUp,
) -> None:
    mine, theirs = handle(), handle()
    fan = await new_fan(http, auth, handle=mine)
    await new_fan(http, other_auth, handle=theirs)
    content = (
        "Date,Username,Amount,Type\n"
        f"2023-05-01,{theirs},5,tip\n"
        f"2023-05-01,{mine},7,tip\n"
        f"2023-05-01,nobody_{uuid.uuid4().hex[:8]},5,tip\n"
        f"2023-05-01,{mine},7,refund\n"
    ).encode()

    summary = (await upload(http, auth, content)).json()["summary"]

    unknown = "handle: no fan of this account has this handle"
    assert summary["successfulInserts"] == 1
    assert summary["errors"] == [
        {"row": 2, "error": unknown, "column": "Username"},
        {"row": 4, "error": unknown, "column": "Username"},
        {
            "row": 5,
            "error": "kind: is not a kind of transaction (subscription, renewal, tip, ppv, post)",
            "column": "Type",
            "value": "refund",
        },
    ]
    await catch_up_all()
    assert await fan_value(http, auth, fan["id"]) == 700
    assert await revenue_days(http, other_auth) == []


@pytest.mark.parametrize(
    ("content", "slug"),
    [
        (b"Username,Amount\nann,5\n", "missing-columns"),
        (b"\x00\x01\x02binary\x00" * 100, "invalid-csv"),
        (b"", "invalid-csv"),
    ],
)
async def test_a_bad_file_is_a_problem_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Callable[[], Awaitable[int]],
    content: bytes,
    slug: str,
) -> None:
    before = await events_of_tenant()
    body = assert_problem(await upload(http, auth, content), 400)
    assert body["type"].endswith(slug)
    assert await events_of_tenant() == before
