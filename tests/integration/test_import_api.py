"""POST /api/onlyfans/import/csv and GET /api/onlyfans/import/jobs against the real app and a
real Postgres: a table of nasty files, each with its exact summary; re-import; tenancy."""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest

from adapters.bootstrap import Container
from adapters.http.app import create_app
from tests.support.imports import (
    FANS,
    IMPORT,
    JOBS,
    CatchUp,
    Headers,
    assert_problem,
    expected,
    summary,
    upload,
)

pytestmark = pytest.mark.timeout(60)


async def fans_of(http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp) -> list[Any]:
    await catch_up()
    response = await http.get(FANS, params={"limit": 200}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["fans"]


BASIC = "username,name,email,total spent,tags\n@ann,Ann,ann@example.com,$12.50,vip\n"

NASTY_FILES = {
    "utf-8 with a BOM": (
        codecs.BOM_UTF8 + "Username,Display Name\nann,Ann Lée\n".encode(),
        expected(1, 1),
    ),
    "utf-16 from Excel, tab separated": (
        "Username\tName\tLifetime Value\r\nann\tAnn\t1234,56\r\nbob\tBob\t7\r\n".encode("utf-16"),
        expected(2, 2),
    ),
    "semicolons and decimal commas": (
        b"handle;e-mail;valeur;total spent\nann;ann@example.com;x;1.234,56\n",
        expected(1, 1),
    ),
    "pipes": (b"handle|notes\nann|likes cats\n", expected(1, 1)),
    "embedded newlines keep spreadsheet row numbers": (
        b'handle,notes,email\nann,"line one\nline two",ann@example.com\nbob,"x",not-an-email\n',
        expected(2, 1, errors=[(3, "email: is not a valid email address")]),
    ),
    "blank lines are not rows but keep their numbers": (
        b"handle,email\n\nann,a@example.com\n\n\nbob,bad\n",
        expected(2, 1, errors=[(6, "email: is not a valid email address")]),
    ),
    "a handle twice in one file": (
        b"handle,total spent\nann,5\nann,5\nANN,7\n",
        expected(3, 1, updated=1, skipped=1),
    ),
    "invalid emails and negative values": (
        b"handle,email,total spent\nann,nope,1\nbob,bob@example.com,-5\ncid,,(3.00)\n",
        expected(
            3,
            0,
            errors=[
                (2, "email: is not a valid email address"),
                (3, "valueCents: must not be negative"),
                (4, "valueCents: must not be negative"),
            ],
        ),
    ),
    "bad cells": (
        b"handle,total spent,joined\nann,12.3456,2024-01-02\nbob,1,someday\n,,\nx y,1,\n",
        expected(
            3,
            0,
            errors=[
                (2, "value: has more than two decimals", "total spent", "12.3456"),
                (3, "subscribedAt: is not a date", "joined", "someday"),
                (5, "handle: must be 1-64 letters, digits, '_', '.' or '-', optionally after '@'"),
            ],
        ),
    ),
    "a header and no rows": (b"handle,email\n", expected(0, 0)),
    "an ignored column after the read ones": (
        b"handle,email,favourite colour\nann,a@example.com,red,and an extra cell\n",
        expected(1, 1),
    ),
}


@pytest.mark.parametrize("case", list(NASTY_FILES))
async def test_each_nasty_file_gives_its_exact_summary(
    http: httpx.AsyncClient, auth: Headers, case: str
) -> None:
    content, want = NASTY_FILES[case]
    assert summary(await upload(http, auth, content)) == want


# --- refusals: 4xx problem+json, nothing imported -------------------------------------------


async def test_a_file_without_a_handle_or_platform_id_column_is_refused_with_the_missing_names(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Callable[[], Awaitable[int]]
) -> None:
    response = await upload(http, auth, b"name,email\nAnn,ann@example.com\n")

    body = assert_problem(response, 400)
    assert body["missing"] == ["handle", "platformId"]
    assert body["found"] == ["name", "email"]
    assert await events_of_tenant() == 0


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (bytes(range(256)) * 64, "not a CSV text file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(5000), "not a CSV text file"),
    ],
    ids=["empty file", "only blank lines", "binary bytes", "a PNG"],
)
async def test_an_empty_or_binary_file_is_refused_with_400(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Callable[[], Awaitable[int]],
    content: bytes,
    detail: str,
) -> None:
    body = assert_problem(await upload(http, auth, content), 400)
    assert detail in body["detail"]
    assert await events_of_tenant() == 0


async def test_a_body_that_is_not_multipart_or_lacks_the_file_field_is_refused(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    assert_problem(await http.post(IMPORT, json={"file": "x"}, headers=auth), 400)
    response = await http.post(IMPORT, files={"other": ("a.csv", b"handle\nann\n")}, headers=auth)
    assert "no field named 'file'" in assert_problem(response, 400)["detail"]


@asynccontextmanager
async def app_with(container: Container, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with these settings changed."""
    changed = dataclasses.replace(
        container, settings=msgspec.structs.replace(container.settings, **settings)
    )
    transport = httpx.ASGITransport(app=create_app(container=changed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def limited_http(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 64 KiB import limit."""
    async with app_with(container, import_max_bytes=65_536) as client:
        yield client


async def test_a_2_gb_stream_is_cut_off_at_the_size_limit_with_413(
    container: Container, auth: Headers
) -> None:
    boundary = "b0undary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
        ' filename="huge.csv"\r\n\r\nhandle,notes\r\n'
    ).encode()
    # The same 100 fans over and over: batch 1 inserts them, every later batch skips them.
    block = b"".join(b"fan%d,%s\r\n" % (i, b"x" * 90) for i in range(100))
    sent = 0

    async def two_gigabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        yield preamble
        while sent < 2 * 1024**3:
            sent += len(block)
            yield block

    async with app_with(container, import_max_bytes=65_536, import_batch_size=100) as http:
        response = await http.post(
            IMPORT,
            content=two_gigabytes(),
            headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )

    body = assert_problem(response, 413)
    assert sent < 1024**2  # the stream stopped being read soon after the limit
    # The blocks that arrived whole within the limit were read, all but the last row: the
    # multipart reader holds back a boundary's length of bytes until it sees what follows.
    # Their whole batches of 100 were committed and stay counted; the job can be resumed.
    rows = 100 * ((65_536 - len(preamble)) // len(block) - 1)
    assert body["jobId"]
    assert body["summary"] == expected(rows, 100, skipped=rows - 100)


async def test_an_announced_length_over_the_limit_is_refused_before_reading(
    limited_http: httpx.AsyncClient, auth: Headers, events_of_tenant: Callable[[], Awaitable[int]]
) -> None:
    response = await upload(limited_http, auth, b"handle\n" + b"ann\n" * 20_000)
    assert_problem(response, 413)
    assert await events_of_tenant() == 0


# --- idempotency ----------------------------------------------------------------------------


async def test_the_answer_lists_the_columns_that_matched_no_fan_field(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await upload(
        http, auth, b"Username,Favourite colour,Email,\nann,red,a@example.com,\n"
    )
    assert summary(response) == expected(1, 1)
    assert response.json()["ignoredColumns"] == ["Favourite colour"]


async def test_a_joined_date_becomes_the_fans_subscription_day(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    await upload(http, auth, b"Username,Joined\nann,2024-02-29\nbob,03/04/2023\ncid,\n")
    later = b"Username,Date joined\nann,2024-03-01T10:00:00Z\nbob,03/04/2023\n"
    assert summary(await upload(http, auth, later)) == expected(2, 0, updated=1, skipped=1)

    days = {fan["handle"]: fan["subscribedAt"] for fan in await fans_of(http, auth, catch_up)}
    assert days == {"ann": "2024-03-01", "bob": "2023-03-04", "cid": None}


async def test_importing_the_same_file_twice_creates_no_new_fans(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    content = BASIC.encode() + b"bob,Bob,,1234,\n"
    assert summary(await upload(http, auth, content)) == expected(2, 2)

    assert summary(await upload(http, auth, content)) == expected(2, 0, skipped=2)
    fans = await fans_of(http, auth, catch_up)
    assert sorted(fan["handle"] for fan in fans) == ["@ann", "bob"]


async def test_a_changed_value_on_reimport_is_an_update_event_and_blank_cells_clear_nothing(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, container: Container, tenant: str
) -> None:
    await upload(http, auth, BASIC.encode())

    changed = b"username,total spent,email\nANN,$20.00,\n"
    assert summary(await upload(http, auth, changed)) == expected(1, 0, updated=1)

    [fan] = await fans_of(http, auth, catch_up)
    assert (fan["handle"], fan["valueCents"], fan["email"]) == ("ANN", 2000, "ann@example.com")
    types = await container.pool.fetch(
        "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version", f"fan-{fan['id']}"
    )
    assert [row[0] for row in types] == ["FanCreated", "FanUpdated"]


async def test_a_fan_changed_through_the_api_since_its_import_is_brought_back_by_a_reimport(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, container: Container
) -> None:
    content = b"handle,total spent\nann,5\nbob,7\n"
    await upload(http, auth, content)
    assert summary(await upload(http, auth, content)) == expected(2, 0, skipped=2)
    fans = {fan["handle"]: fan["id"] for fan in await fans_of(http, auth, catch_up)}
    remembered = await container.pool.fetch(
        "SELECT stream_id, row_digest IS NOT NULL, fan_version FROM import_fan_keys"
        " WHERE stream_id = ANY($1::text[]) ORDER BY stream_id",
        [f"fan-{fans['ann']}", f"fan-{fans['bob']}"],
    )
    assert [tuple(row)[1:] for row in remembered] == [(True, 1), (True, 1)]

    patched = await http.patch(f"{FANS}/{fans['ann']}", json={"valueCents": 900}, headers=auth)
    assert patched.status_code == 200, patched.text

    # Ann's entry remembers version 1; her stream is at 2 now: she is loaded, and updated.
    assert summary(await upload(http, auth, content)) == expected(2, 0, updated=1, skipped=1)
    values = {fan["handle"]: fan["valueCents"] for fan in await fans_of(http, auth, catch_up)}
    assert values == {"ann": 500, "bob": 700}
    assert summary(await upload(http, auth, content)) == expected(2, 0, skipped=2)


async def test_a_fan_renamed_through_the_api_is_found_by_its_new_handle(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    await upload(http, auth, b"handle,total spent\nann,5\n")
    [fan] = await fans_of(http, auth, catch_up)
    renamed = await http.patch(f"{FANS}/{fan['id']}", json={"handle": "anna"}, headers=auth)
    assert renamed.status_code == 200, renamed.text
    await catch_up()

    assert summary(await upload(http, auth, b"handle,total spent\nanna,6\n")) == expected(
        1, 0, updated=1
    )
    assert summary(await upload(http, auth, b"handle,total spent\nanna,6\n")) == expected(
        1, 0, skipped=1
    )
    [fan] = await fans_of(http, auth, catch_up)
    assert (fan["handle"], fan["valueCents"]) == ("anna", 600)
    # The rename freed its old handle (issue 14): a row with it is another fan.
    assert summary(await upload(http, auth, b"handle,total spent\nann,6\n")) == expected(1, 1)


async def test_fans_are_matched_by_platform_id_before_handle(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    await upload(http, auth, b"user id,username\n42,ann\n")

    assert summary(await upload(http, auth, b"user id,username\n42,ann_new\n")) == expected(
        1, 0, updated=1
    )
    [fan] = await fans_of(http, auth, catch_up)
    assert (fan["platformId"], fan["handle"]) == ("42", "ann_new")


async def test_two_imports_of_the_same_file_at_once_create_each_fan_once(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    content = b"handle\n" + b"".join(b"fan%d\n" % i for i in range(300))

    first, second = await asyncio.gather(upload(http, auth, content), upload(http, auth, content))

    inserted = summary(first)["successfulInserts"] + summary(second)["successfulInserts"]
    assert inserted == 300
    assert summary(first)["skipped"] + summary(second)["skipped"] == 300
    await catch_up()
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await http.get(FANS, params=params, headers=auth)
        seen += [fan["handle"] for fan in response.json()["fans"]]
        cursor = response.json()["nextCursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(f"fan{i}" for i in range(300))


async def test_a_deleted_fan_stays_deleted_and_its_handle_like_an_erased_ones_is_free(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, container: Container
) -> None:
    await upload(http, auth, b"platform id,handle\np-1,ann\n,bob\n")
    fans = {fan["handle"]: fan["id"] for fan in await fans_of(http, auth, catch_up)}
    assert (await http.delete(f"{FANS}/{fans['ann']}", headers=auth)).status_code == 200
    erased = await http.delete(f"{FANS}/{fans['bob']}", params={"erase": "true"}, headers=auth)
    assert erased.status_code == 200

    # Not caught up: the fans read model still shows both, and must not bring them back.
    again = summary(await upload(http, auth, b"platform id,handle\np-1,\n,ann\n,bob\n"))

    # The deleted fan's platform id still names it (skipped); its handle names nobody since
    # the deletion freed it (issue 14), and an erased fan is forgotten: both rows are new fans.
    assert again == expected(3, 2, skipped=1)
    remaining = await fans_of(http, auth, catch_up)
    assert sorted(fan["handle"] for fan in remaining) == ["ann", "bob"]
    assert not {fan["id"] for fan in remaining} & set(fans.values())
    # Erasure deleted the index entries that pointed at the erased fan.
    left = await container.pool.fetchval(
        "SELECT count(*) FROM import_fan_keys WHERE stream_id = $1", f"fan-{fans['bob']}"
    )
    assert left == 0


# --- tenancy and history --------------------------------------------------------------------


async def test_an_import_never_touches_another_tenants_fans(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: CatchUp
) -> None:
    await upload(http, auth, BASIC.encode())

    theirs = summary(await upload(http, other_auth, b"username,total spent\n@ann,$99\n"))

    assert theirs == expected(1, 1)
    [mine] = await fans_of(http, auth, catch_up)
    assert mine["valueCents"] == 1250
    [other] = await fans_of(http, other_auth, catch_up)
    assert other["id"] != mine["id"]


async def test_the_import_history_lists_the_tenants_jobs_newest_first(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: CatchUp
) -> None:
    await upload(http, auth, BASIC.encode(), name="first.csv")
    await upload(http, auth, b"handle,email\nann,bad\n", name="second.csv")
    await upload(http, other_auth, BASIC.encode(), name="theirs.csv")
    await catch_up()

    page = (await http.get(JOBS, params={"limit": 1}, headers=auth)).json()
    rest = (
        await http.get(JOBS, params={"limit": 5, "cursor": page["nextCursor"]}, headers=auth)
    ).json()

    jobs = page["jobs"] + rest["jobs"]
    assert rest["nextCursor"] is None
    assert [job["fileName"] for job in jobs] == ["second.csv", "first.csv"]
    second, first = jobs
    assert second["status"] == "completed"
    assert second["summary"] == expected(
        1, 0, skipped=0, errors=[(2, "email: is not a valid email address")]
    )
    assert first["summary"] == expected(1, 1)
    assert first["sizeBytes"] == len(BASIC.encode())
    assert len(first["checksumSha256"]) == 64


async def test_fans_created_through_the_api_are_matched_once_projected(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    created = await http.post(
        FANS, json={"name": "Ann", "handle": "@ann", "valueCents": 100}, headers=auth
    )
    assert created.status_code == 201, created.text
    await catch_up()

    again = await upload(http, auth, b"username,total spent\nANN,1.00\nbob,2\n")

    assert summary(again) == expected(2, 1, updated=1)
    fans = await fans_of(http, auth, catch_up)
    assert sorted((fan["handle"], fan["id"] == created.json()["fan"]["id"]) for fan in fans) == [
        ("ANN", True),
        ("bob", False),
    ]


async def test_a_fan_created_through_the_api_with_a_handle_and_a_platform_id_is_found_by_either(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    # The API claims the handle in the import's index; the platform id must be indexed too.
    body = {"name": "Ann", "handle": "@ann", "platformId": "42", "valueCents": 100}
    created = await http.post(FANS, json=body, headers=auth)
    assert created.status_code == 201, created.text
    await catch_up()

    by_id = await upload(http, auth, b"user id,total spent\n42,3.00\n")
    assert summary(by_id) == expected(1, 0, updated=1)
    by_handle = await upload(http, auth, b"username,total spent\nann,4.00\n")
    assert summary(by_handle) == expected(1, 0, updated=1)
    [fan] = await fans_of(http, auth, catch_up)
    assert (fan["id"], fan["valueCents"]) == (created.json()["fan"]["id"], 400)


async def test_an_import_cut_off_by_the_limit_is_failed_in_the_history_and_resumes_to_the_end(
    http: httpx.AsyncClient, limited_http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    content = b"handle\r\n" + b"".join(b"fan%d\r\n" % i for i in range(10_000))

    async def without_length() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="f.csv"\r\n\r\n'
        for start in range(0, len(content), 4096):
            yield content[start : start + 4096]
        yield b"\r\n--b--\r\n"

    cut = assert_problem(
        await limited_http.post(
            IMPORT,
            content=without_length(),
            headers={**auth, "Content-Type": "multipart/form-data; boundary=b"},
        ),
        413,
    )

    committed = cut["summary"]["successfulInserts"]
    assert committed > 0
    assert committed % 1000 == 0  # whole batches only
    await catch_up()
    [job] = (await http.get(JOBS, headers=auth)).json()["jobs"]
    assert (job["jobId"], job["status"], job["summary"]["successfulInserts"]) == (
        cut["jobId"],
        "failed",
        committed,
    )
    assert "limit" in job["failure"]

    other_file = content.replace(b"fan%d\r\n" % (committed - 1), b"someone_else\r\n")
    refused = assert_problem(await upload(http, auth, other_file, resumeJobId=cut["jobId"]), 409)
    assert f"its row {committed + 1} is not the row the import committed" in refused["detail"]

    resumed = await upload(http, auth, content, resumeJobId=cut["jobId"])

    assert resumed.json()["jobId"] == cut["jobId"]
    assert summary(resumed) == expected(10_000, 10_000)
    await catch_up()
    [job] = (await http.get(JOBS, headers=auth)).json()["jobs"]
    assert (job["status"], job["summary"]["totalRows"]) == ("completed", 10_000)


async def test_a_fan_repeated_in_consecutive_batches_is_created_once(
    container: Container, auth: Headers, catch_up: CatchUp
) -> None:
    """Batches of one row: each batch is decided while the previous one commits, so the
    second 'ann' is decided before the first is committed, and must wait for it."""
    changed = dataclasses.replace(
        container, settings=msgspec.structs.replace(container.settings, import_batch_size=1)
    )
    transport = httpx.ASGITransport(app=create_app(container=changed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        content = b"handle,total spent\nann,1\nann,1\nbob,1\nann,2\nbob,1\nann,2\n"
        assert summary(await upload(client, auth, content)) == expected(6, 2, updated=1, skipped=3)
        fans = await fans_of(client, auth, catch_up)
    assert sorted((fan["handle"], fan["valueCents"]) for fan in fans) == [
        ("ann", 200),
        ("bob", 100),
    ]
