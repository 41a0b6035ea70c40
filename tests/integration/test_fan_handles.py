"""A handle is one live fan's per tenant and platform, through the API and the import alike
(issue 14): decided in the command's transaction, never on the fans read model.

No projector runs in the background here: the fans read model lags until a test calls
``catch_up``, so a test that does not call it shows that no decision waited for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from adapters import bootstrap
from adapters.bootstrap import Container
from adapters.postgres.migrate import migrate, migration_files
from application import fans
from domain.fan import Fan, HandleTaken
from tests.support import databases
from tests.support.fakes import creator_context
from tests.support.imports import FANS, CatchUp, Headers, expected, summary, upload
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(60)


async def create(http: httpx.AsyncClient, auth: Headers, **body: Any) -> dict[str, Any]:
    response = await http.post(FANS, json=body, headers=auth)
    assert response.status_code == 201, response.text
    fan: dict[str, Any] = response.json()["fan"]
    return fan


def assert_taken(response: httpx.Response, holder: int) -> None:
    """A 409 problem+json naming the fan that holds the handle."""
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/handle-taken")
    assert body["fanId"] == holder
    assert str(holder) in body["detail"]


async def fans_of(http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp) -> list[Any]:
    await catch_up()
    response = await http.get(FANS, params={"limit": 200}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["fans"]


async def test_creating_a_fan_with_a_handle_another_fan_has_answers_409_naming_it(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    first = await create(http, auth, handle="@Ann")

    again = await http.post(FANS, json={"handle": "ann"}, headers=auth)

    assert_taken(again, first["id"])
    assert [fan["id"] for fan in await fans_of(http, auth, catch_up)] == [first["id"]]


async def test_two_concurrent_creates_of_one_handle_make_one_fan(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    async with asyncio.timeout(20):
        responses = await asyncio.gather(
            *(
                http.post(FANS, json={"handle": "bob", "name": f"Bob {n}"}, headers=auth)
                for n in range(2)
            )
        )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409], [response.text for response in responses]
    [made] = [r.json()["fan"] for r in responses if r.status_code == 201]
    [refused] = [r for r in responses if r.status_code == 409]
    assert_taken(refused, made["id"])
    assert [fan["id"] for fan in await fans_of(http, auth, catch_up)] == [made["id"]]


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_renaming_a_fan_to_a_handle_another_fan_has_answers_409(
    http: httpx.AsyncClient, auth: Headers, method: str
) -> None:
    ann = await create(http, auth, handle="ann")
    bob = await create(http, auth, handle="bob")

    renamed = await http.request(
        method, f"{FANS}/{bob['id']}", json={"handle": "ANN"}, headers=auth
    )

    assert_taken(renamed, ann["id"])
    # Another change to bob, keeping his handle, is fine.
    kept = await http.patch(f"{FANS}/{bob['id']}", json={"notes": "x"}, headers=auth)
    assert kept.status_code == 200, kept.text


async def test_two_fans_swapping_handles_at_once_never_share_one(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    ann = await create(http, auth, handle="ann")
    bob = await create(http, auth, handle="bob")

    async with asyncio.timeout(20):
        responses = await asyncio.gather(
            http.patch(f"{FANS}/{ann['id']}", json={"handle": "bob"}, headers=auth),
            http.patch(f"{FANS}/{bob['id']}", json={"handle": "ann"}, headers=auth),
        )

    # Neither can go first: each needs the handle the other holds until it has moved.
    assert [r.status_code for r in responses] == [409, 409], [r.text for r in responses]
    handles = {fan["id"]: fan["handle"] for fan in await fans_of(http, auth, catch_up)}
    assert handles == {ann["id"]: "ann", bob["id"]: "bob"}


async def test_a_rename_frees_the_old_handle_and_holds_the_new_one(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    ann = await create(http, auth, handle="ann")
    renamed = await http.patch(f"{FANS}/{ann['id']}", json={"handle": "anna"}, headers=auth)
    assert renamed.status_code == 200, renamed.text

    await create(http, auth, handle="ann")
    assert_taken(await http.post(FANS, json={"handle": "anna"}, headers=auth), ann["id"])


@pytest.mark.parametrize("erase", [False, True])
async def test_deleting_or_erasing_a_fan_frees_its_handle(
    http: httpx.AsyncClient, auth: Headers, container: Container, erase: bool
) -> None:
    ann = await create(http, auth, handle="ann")

    params = {"erase": "true"} if erase else {}
    gone = await http.delete(f"{FANS}/{ann['id']}", params=params, headers=auth)
    assert gone.status_code == 200, gone.text

    again = await create(http, auth, handle="ann")
    assert_taken(await http.post(FANS, json={"handle": "ann"}, headers=auth), again["id"])
    # The gone fan holds nothing in the index any more: no hash of its handle points at it.
    left = await container.pool.fetchval(
        "SELECT count(*) FROM import_fan_keys WHERE stream_id = $1", f"fan-{ann['id']}"
    )
    assert left == 0


async def test_the_same_handle_on_another_platform_or_of_another_tenant_is_accepted(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers
) -> None:
    mine = await create(http, auth, handle="ann")

    fansly = await create(http, auth, handle="ann", platform="fansly")
    theirs = await create(http, other_auth, handle="ann")

    # Each holds it where it is: once per platform and tenant.
    assert_taken(await http.post(FANS, json={"handle": "ann"}, headers=auth), mine["id"])
    again = {"handle": "ann", "platform": "fansly"}
    assert_taken(await http.post(FANS, json=again, headers=auth), fansly["id"])
    assert_taken(await http.post(FANS, json={"handle": "ann"}, headers=other_auth), theirs["id"])


async def test_creating_a_fan_with_a_handle_an_import_gave_a_fan_answers_409(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    assert summary(await upload(http, auth, b"handle\n@ann\n")) == expected(1, 1)
    [imported] = await fans_of(http, auth, catch_up)

    assert_taken(await http.post(FANS, json={"handle": "Ann"}, headers=auth), imported["id"])


async def test_an_import_row_with_the_handle_of_a_fan_made_through_the_api_updates_that_fan(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    ann = await create(http, auth, handle="ann")  # not projected yet: no catch_up

    result = summary(await upload(http, auth, b"handle,notes\n@ANN,from the file\n"))

    assert result == expected(1, 0, updated=1)
    [fan] = await fans_of(http, auth, catch_up)
    assert (fan["id"], fan["notes"]) == (ann["id"], "from the file")


async def test_an_import_row_with_a_renamed_fans_new_handle_updates_that_fan(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    ann = await create(http, auth, handle="ann")
    renamed = await http.patch(f"{FANS}/{ann['id']}", json={"handle": "anna"}, headers=auth)
    assert renamed.status_code == 200, renamed.text

    result = summary(await upload(http, auth, b"handle,notes\nanna,renamed\nann,new\n"))

    assert result == expected(2, 1, updated=1)
    fans = {fan["handle"]: fan["id"] for fan in await fans_of(http, auth, catch_up)}
    assert fans["anna"] == ann["id"]
    assert fans["ann"] != ann["id"]


async def test_an_import_renaming_a_fan_frees_its_old_handle(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, container: Container
) -> None:
    summary(await upload(http, auth, b"platform id,handle\np-1,ann\n"))
    assert summary(await upload(http, auth, b"platform id,handle\np-1,anna\n"))["updated"] == 1

    made = await create(http, auth, handle="ann")

    [renamed] = [f for f in await fans_of(http, auth, catch_up) if f["handle"] == "anna"]
    assert made["id"] != renamed["id"]
    assert_taken(await http.post(FANS, json={"handle": "ann"}, headers=auth), made["id"])
    assert_taken(await http.post(FANS, json={"handle": "anna"}, headers=auth), renamed["id"])


async def test_an_import_row_giving_a_fan_another_fans_handle_is_refused(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    summary(await upload(http, auth, b"platform id,handle\np-1,ann\n"))
    bob = await create(http, auth, handle="bob")

    result = summary(await upload(http, auth, b"platform id,handle,notes\np-1,@Bob,x\n"))

    error = f"handle: fan {bob['id']} already has this handle on this platform"
    assert result == expected(1, 0, errors=[(2, error)])
    handles = sorted(fan["handle"] for fan in await fans_of(http, auth, catch_up))
    assert handles == ["ann", "bob"]


async def test_a_holder_the_log_shows_renamed_away_loses_the_handle_to_a_create(
    http: httpx.AsyncClient, auth: Headers, container: Container, tenant: str
) -> None:
    """An index entry left pointing at a fan that no longer has the handle (written before
    handles were claimed, when a rename kept the old entry): the log decides."""
    ann = await create(http, auth, handle="ann")
    [entry] = await container.pool.fetch(
        "SELECT key_hash FROM import_fan_keys WHERE stream_id = $1", f"fan-{ann['id']}"
    )
    renamed = await http.patch(f"{FANS}/{ann['id']}", json={"handle": "anna"}, headers=auth)
    assert renamed.status_code == 200, renamed.text
    await container.pool.execute(
        "INSERT INTO import_fan_keys (tenant_id, key_hash, stream_id) VALUES ($1, $2, $3)",
        tenant,
        entry["key_hash"],
        f"fan-{ann['id']}",
    )

    made = await create(http, auth, handle="ann")

    assert_taken(await http.post(FANS, json={"handle": "ann"}, headers=auth), made["id"])


async def test_fans_made_before_handles_were_unique_are_kept_and_the_oldest_holds_each_handle(
    test_server: databases.TestServer, tmp_path: Path
) -> None:
    """A deployment upgraded to 029 with two fans sharing a handle, made through the API (no
    index entry), and a deleted one: the migration applies, the next start claims."""
    before = tmp_path / "before"
    before.mkdir()
    for number, path in migration_files():
        if number < 29:
            (before / path.name).symlink_to(path)
    async with _empty_database(test_server) as url:
        async with _database_at(url, before) as container:
            ctx = creator_context()
            first, second, deleted = await container.ids.next_ids("fan", 3)
            for fan_id, handle, gone in (
                (first, "ann", False),
                (second, "@Ann", False),
                (deleted, "cat", True),
            ):
                fan = Fan.register(fan_id=fan_id, tenant=ctx.tenant, handle=handle)
                if gone:
                    fan.delete()
                events = fan.collect_events()
                await container.events.append(
                    fan.id, "fan", events, expected_version=0, metadata=ctx.metadata()
                )
                if not gone:  # as the fans projector left them
                    await container.pool.execute(
                        "INSERT INTO fans (fan_id, tenant_id, platform, handle, created_at,"
                        " updated_at, version, identity_version)"
                        " VALUES ($1, $2, 'onlyfans', $3, now(), now(), 1, 1)",
                        fan_id,
                        ctx.tenant,
                        handle,
                    )

        assert "029_unique_handles.sql" in await migrate(url)
        async with _database_at(url) as container:
            with pytest.raises(HandleTaken) as taken:
                await fans.create_fan(
                    fans.CreateFan(handle="ANN"), ctx, store=container.events, ids=container.ids
                )
            assert taken.value.fan_id == first
            # The second keeps its handle, and stays editable.
            edited = await fans.update_fan(
                fans.UpdateFan(fan_id=second, changes={"notes": "still here"}),
                ctx,
                store=container.events,
            )
            assert edited.fan.handle == "@Ann"
            await fans.create_fan(
                fans.CreateFan(handle="cat"), ctx, store=container.events, ids=container.ids
            )
            assert await container.pool.fetchval("SELECT count(*) FROM handle_claims_backfill") == 0


@asynccontextmanager
async def _empty_database(test_server: databases.TestServer) -> AsyncIterator[str]:
    name = f"fancrm_handles_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(test_server.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield databases.with_database(test_server.admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def _database_at(url: str, migrations: Path | None = None) -> AsyncIterator[Container]:
    """The app's container on ``url`` (migrated with ``migrations`` first, if given)."""
    if migrations is not None:
        await migrate(url, migrations)
    container = await bootstrap.build(settings_for(url))
    try:
        yield container
    finally:
        await container.close()


async def test_concurrent_creates_on_a_new_process_never_wait_on_the_pool_inside_a_transaction(
    fresh_database_url: str,
) -> None:
    """The first claim of a process loads the index key through the pool. Loaded inside the
    append's transaction, more concurrent creates than the pool has connections held every
    connection while each waited for one more: the API process hung (bench/send.py's seeding
    did). The key is loaded before the append takes its connection."""
    container = await bootstrap.build(
        settings_for(fresh_database_url, pool_min_size=1, pool_max_size=2)
    )
    try:
        ctx = creator_context()
        creates = [
            fans.create_fan(
                fans.CreateFan(handle=f"crowd_{n}"), ctx, store=container.events, ids=container.ids
            )
            for n in range(8)
        ]
        async with asyncio.timeout(30):
            created = await asyncio.gather(*creates)
        assert len({c.fan.fan_id for c in created}) == 8
    finally:
        await container.close()
