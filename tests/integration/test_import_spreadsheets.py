"""POST /api/onlyfans/import/csv with files as spreadsheets really write them: stray quotes,
UTF-16 without a BOM, CRLF inside quoted cells, money in US and European spellings, headers
with a currency, and lines longer than a row may be. Each answer is an exact summary, or a
problem+json 4xx, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from adapters.csv_import import records
from tests.support.imports import (
    FANS,
    JOBS,
    CatchUp,
    Headers,
    assert_problem,
    expected,
    summary,
    upload,
)

pytestmark = pytest.mark.timeout(60)


async def fans_of(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, count: int
) -> dict[str, Any]:
    """The tenant's fans by handle, once ``count`` of them are projected. Projectors read the
    log only below the snapshot's xmin, which any open transaction on the same Postgres
    server holds back (another test run, a benchmark): wait for it, a little."""
    for _ in range(100):
        await catch_up()
        response = await http.get(FANS, params={"limit": 200}, headers=auth)
        assert response.status_code == 200, response.text
        fans = {fan["handle"]: fan for fan in response.json()["fans"]}
        if len(fans) >= count:
            break
        await asyncio.sleep(0.1)
    return fans


async def jobs_of(http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp) -> list[Any]:
    """The tenant's import jobs, once one is projected (see ``fans_of``)."""
    for _ in range(100):
        await catch_up()
        jobs = (await http.get(JOBS, headers=auth)).json()["jobs"]
        if jobs:
            break
        await asyncio.sleep(0.1)
    return jobs


# --- files that import ------------------------------------------------------------------------


async def test_a_quote_inside_an_unquoted_cell_is_kept_and_swallows_no_row(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    content = b'handle,notes,email\nann,6" tall,\nbob,x,\ncid,"two\nlines",\ndan,"y",not-an-email\n'

    assert summary(await upload(http, auth, content)) == expected(
        4, 3, errors=[(5, "email: is not a valid email address")]
    )
    fans = await fans_of(http, auth, catch_up, 3)
    assert {handle: fan["notes"] for handle, fan in fans.items()} == {
        "ann": '6" tall',
        "bob": "x",
        "cid": "two\nlines",
    }


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
async def test_utf_16_without_a_bom_is_recognised(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, encoding: str
) -> None:
    text = "Username\tName\tTotal spent\r\nann\tAnn Lée\t1234,56\r\nbob\tBøb\t7\r\n"
    content = text.encode(encoding)
    assert not content.startswith((b"\xff\xfe", b"\xfe\xff"))

    assert summary(await upload(http, auth, content)) == expected(2, 2)
    fans = await fans_of(http, auth, catch_up, 2)
    assert {handle: (fan["name"], fan["valueCents"]) for handle, fan in fans.items()} == {
        "ann": ("Ann Lée", 123456),
        "bob": ("Bøb", 700),
    }


async def test_crlf_line_ends_with_a_crlf_inside_a_quoted_cell(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    content = (
        b"handle,notes,email\r\n"
        b'ann,"line one\r\nline two\r\n",ann@example.com\r\n'
        b"bob,x,nope\r\n"
        b"\r\n"
        b"cid,y,\r\n"
    )

    assert summary(await upload(http, auth, content)) == expected(
        3, 2, errors=[(3, "email: is not a valid email address")]
    )
    fans = await fans_of(http, auth, catch_up, 2)
    assert {handle: fan["notes"] for handle, fan in fans.items()} == {
        "ann": "line one\nline two",
        "cid": "y",
    }


async def test_money_in_us_and_european_spellings(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    content = (
        "handle;total spent\n"
        "ann;$1,234.56\n"
        "bob;1 234,56 €\n"
        'cid;"1\u00a0234,56\u00a0€"\n'
        "dan;1.234\n"
        "eve;0.125\n"
        "fay;5-\n"
        "gus;(5\n"
        f"hal;{'9' * 80}x\n"
    ).encode()

    assert summary(await upload(http, auth, content)) == expected(
        8,
        4,
        errors=[
            (6, "value: has more than two decimals", "total spent", "0.125"),
            (7, "value: is not an amount of money", "total spent", "5-"),
            (8, "value: is not an amount of money", "total spent", "(5"),
            (9, "value: is too long to be an amount of money", "total spent", f"{'9' * 59}…"),
        ],
    )
    fans = await fans_of(http, auth, catch_up, 4)
    assert {handle: fan["valueCents"] for handle, fan in fans.items()} == {
        "ann": 123456,
        "bob": 123456,
        "cid": 123456,
        "dan": 123400,
    }


@pytest.mark.parametrize("header", ["Total Spent (USD)", "Lifetime Value ($)", "Total spent [EUR]"])
async def test_a_money_header_with_its_currency_is_the_value(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, header: str
) -> None:
    content = f"Username,{header},Joined date\nann,$12.50,2024-01-02\nbob,3,someday\n".encode()

    assert summary(await upload(http, auth, content)) == expected(
        2, 1, errors=[(3, "subscribedAt: is not a date", "Joined date", "someday")]
    )
    fans = await fans_of(http, auth, catch_up, 1)
    assert {handle: fan["valueCents"] for handle, fan in fans.items()} == {"ann": 1250}


# --- files that are refused: problem+json 400, never a 500 ------------------------------------


@pytest.fixture
def small_rows(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 1,000-character row limit, so that a line over it is small to send."""
    monkeypatch.setattr(records, "MAX_ROW_CHARS", 1_000)
    return 1_000


async def test_a_header_line_longer_than_a_row_may_be_is_refused(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Callable[[], Awaitable[int]],
    small_rows: int,
) -> None:
    content = b"handle," + b"x" * (small_rows * 20)  # no line break at all

    body = assert_problem(await upload(http, auth, content), 400)

    assert body["detail"] == f"row 1 is longer than {small_rows} characters"
    assert await events_of_tenant() == 0


@pytest.mark.parametrize(
    ("tail", "detail"),
    [
        (b"eve," + b"x" * 5_000 + b"\nfay\n", "row 4 is longer than 1000 characters"),
        (b"eve," + b"x" * 5_000, "row 4 is longer than 1000 characters"),
        (b'eve,"open\n' + b"more\n" * 500, "row 4 never closes its quotes"),
    ],
    ids=["a long line", "a long last line", "a quote that never closes"],
)
async def test_a_row_longer_than_a_row_may_be_fails_the_job_with_400(
    http: httpx.AsyncClient,
    auth: Headers,
    catch_up: CatchUp,
    small_rows: int,
    tail: bytes,
    detail: str,
) -> None:
    content = b"handle,notes\nann,x\n\n" + tail

    body = assert_problem(await upload(http, auth, content), 400)

    assert body["detail"] == detail
    [job] = await jobs_of(http, auth, catch_up)
    assert (job["jobId"], job["status"], job["failure"]) == (body["jobId"], "failed", detail)
    assert body["summary"] == job["summary"]
