"""Personal data in the immutable log: encrypted at rest, erasable, rotatable."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest

from adapters import bootstrap
from adapters.crypto import MasterKeyError, generate_master_key
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from adapters.postgres.subject_keys import SubjectErased
from application.context import CommandContext
from application.ports import EventMetadata
from domain.fan import Fan, fan_stream_id
from projections.fans import FansProjection
from projections.runner import ProjectionRunner
from tests.support.settings import TEST_MASTER_KEY, settings_for

SECRETS = {
    "name": "Zelda Quux-Personal",
    "handle": "@zelda_quux_secret",
    "email": "zelda.quux@private.example",
    "notes": "lives at 12 Hidden Lane",
}


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


@pytest.fixture
async def client(fresh: bootstrap.Container) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    key, _ = await create_api_key(fresh.pool, user_id="creator-1", role="creator")
    transport = httpx.ASGITransport(app=create_app(container=fresh))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {key}"},
    ) as http:
        yield http, key


class Finished(msgspec.Struct):
    returncode: int
    stdout: str
    stderr: str


async def run_crm(env: dict[str, str], *args: str) -> Finished:
    """The `crm` command in its own process, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def raw_log_text(pool: asyncpg.Pool) -> str:
    """Everything the events table holds, as the text a database dump would show."""
    rows = await pool.fetch("SELECT e::text AS line FROM events e ORDER BY position")
    return "\n".join(row["line"] for row in rows)


async def create_secret_fan(
    http: httpx.AsyncClient, handle: str = SECRETS["handle"]
) -> dict[str, object]:
    # A handle is one fan's per tenant and platform: several fans need several handles.
    response = await http.post(
        "/api/crm/fans", json={**SECRETS, "handle": handle, "valueCents": 12_345}
    )
    assert response.status_code == 201, response.text
    fan = response.json()["fan"]
    updated = await http.patch(f"/api/crm/fans/{fan['id']}", json={"notes": "moved to 3 Elm St"})
    assert updated.status_code == 200, updated.text
    return fan


async def test_personal_values_never_appear_in_clear_in_the_events_table(
    fresh: bootstrap.Container, client: tuple[httpx.AsyncClient, str]
) -> None:
    http, _ = client
    fan = await create_secret_fan(http)
    text = await raw_log_text(fresh.pool)
    for value in [*SECRETS.values(), "moved to 3 Elm St", "zelda", "Hidden Lane"]:
        assert value.lower() not in text.lower()
    # What is not personal stays queryable in clear.
    row = await fresh.pool.fetchrow(
        "SELECT data, metadata FROM events WHERE stream_id = $1 AND version = 1",
        fan_stream_id(int(fan["id"])),  # type: ignore[call-overload]
    )
    assert row["data"]["value_cents"] == 12_345
    assert row["metadata"]["tenant"] == "creator-1"
    assert "_pii" in row["data"]
    # ... and the application still reads the plain values.
    [created, _] = await fresh.events.load(fan_stream_id(int(fan["id"])))  # type: ignore[call-overload]
    assert isinstance(created.event, Fan.Created)
    assert (created.event.name, created.event.email) == (SECRETS["name"], SECRETS["email"])


async def test_erasing_a_fan_leaves_no_personal_data_readable_anywhere(
    fresh: bootstrap.Container, client: tuple[httpx.AsyncClient, str]
) -> None:
    http, _ = client
    fan = await create_secret_fan(http)
    fan_id = int(fan["id"])  # type: ignore[call-overload]
    runner = ProjectionRunner(fresh.projection_store, FansProjection())
    await runner.catch_up()
    assert await fresh.pool.fetchval("SELECT name FROM fans WHERE fan_id = $1", fan_id)

    erased = await http.delete(f"/api/crm/fans/{fan_id}", params={"erase": "true"})
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"] is True
    await runner.catch_up()

    # Read tables: nothing left of the fan.
    assert await fresh.pool.fetchval("SELECT count(*) FROM fans WHERE fan_id = $1", fan_id) == 0
    assert (await http.get(f"/api/crm/fans/{fan_id}")).status_code == 404
    # The key is gone for good; its row stays as a tombstone.
    row = await fresh.pool.fetchrow(
        "SELECT wrapped_key, destroyed_at FROM subject_keys WHERE subject_id = $1",
        fan_stream_id(fan_id),
    )
    assert row["wrapped_key"] is None
    assert row["destroyed_at"] is not None

    # A full rebuild into fresh tables brings back no personal data of the fan.
    await fresh.pool.execute(
        "CREATE SCHEMA rebuilt; CREATE TABLE rebuilt.fans (LIKE public.fans INCLUDING ALL)"
    )
    await ProjectionRunner(fresh.projection_store, FansProjection(), schema="rebuilt").catch_up()
    assert await fresh.pool.fetchval("SELECT count(*) FROM rebuilt.fans") == 0

    # Audit reads: the events are all there, amounts and dates intact, personal fields erased.
    history = await fresh.events.load(fan_stream_id(fan_id))
    assert [r.event_type for r in history] == ["FanCreated", "FanUpdated", "FanErased"]
    created, updated, _ = history
    assert set(created.erased) == {"platform_id", "name", "handle", "email", "notes"}
    assert set(updated.erased) == {"name", "handle", "email", "notes"}
    assert isinstance(created.event, Fan.Created)
    assert (created.event.name, created.event.email, created.event.value_cents) == (
        None,
        None,
        12_345,
    )
    assert created.recorded_at is not None
    replayed = None
    for recorded in history:
        replayed = recorded.event.mutate(replayed)
    assert isinstance(replayed, Fan)
    assert replayed.erased
    assert replayed.value_cents == 12_345


async def test_erasing_a_fan_forgets_the_responses_kept_for_idempotency_keys(
    fresh: bootstrap.Container, client: tuple[httpx.AsyncClient, str]
) -> None:
    """A fan created with an Idempotency-Key has its answer, name and email included, kept
    for replays; erasure must not leave that copy behind."""
    http, _ = client
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    created = await http.post("/api/crm/fans", json=SECRETS, headers=key)
    assert created.status_code == 201, created.text
    other = await http.post(
        "/api/crm/fans", json={"handle": "someone_else"}, headers={"Idempotency-Key": "other"}
    )
    assert other.status_code == 201, other.text
    kept = "SELECT count(*) FROM idempotency_keys WHERE convert_from(body, 'UTF8') LIKE $1"
    assert await fresh.pool.fetchval(kept, f"%{SECRETS['email']}%") == 1

    erased = await http.delete(f"/api/crm/fans/{created.json()['fan']['id']}?erase=true")
    assert erased.status_code == 200, erased.text

    assert await fresh.pool.fetchval(kept, f"%{SECRETS['email']}%") == 0
    assert await fresh.pool.fetchval(kept, "%someone_else%") == 1
    # The key is free again: nothing of the erased fan can be replayed from it.
    again = await http.post("/api/crm/fans", json={"handle": "new_fan"}, headers=key)
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers


async def test_no_command_can_write_personal_data_for_an_erased_fan(
    fresh: bootstrap.Container, client: tuple[httpx.AsyncClient, str]
) -> None:
    http, _ = client
    fan_id = int((await create_secret_fan(http))["id"])  # type: ignore[call-overload]
    assert (await http.delete(f"/api/crm/fans/{fan_id}?erase=true")).status_code == 200
    assert (await http.patch(f"/api/crm/fans/{fan_id}", json={"name": "Back"})).status_code == 404
    assert (await http.delete(f"/api/crm/fans/{fan_id}?erase=true")).status_code == 404
    # Even bypassing the aggregate, the store refuses to encrypt for an erased subject, and a
    # process that never cached the key learns it from the tombstone.
    other = await bootstrap.build(settings_for(fresh.settings.database_url))
    try:
        stream = fan_stream_id(fan_id)
        history = await other.events.load(stream)
        sneaky = Fan.Updated(
            originator_id=stream,
            originator_version=len(history) + 1,
            timestamp=history[-1].recorded_at,
            name="Zelda Again",
            handle=None,
            email=None,
            value_cents=0,
            tags=(),
            notes=None,
        )
        meta = EventMetadata(tenant="creator-1", actor="test", correlation_id="c", causation_id="c")
        with pytest.raises(SubjectErased):
            await other.events.append(
                stream, "fan", [sneaky], expected_version=len(history), metadata=meta
            )
    finally:
        await other.close()
    assert "Zelda Again" not in await raw_log_text(fresh.pool)


async def test_erasing_from_the_command_line(fresh: bootstrap.Container) -> None:
    ctx = CommandContext(tenant="creator-9", actor="test", correlation_id="c")
    from application.fans import CreateFan, create_fan

    created = await create_fan(CreateFan(name="Cli Person"), ctx, store=fresh.events, ids=fresh.ids)
    env = {
        **os.environ,
        "DATABASE_URL": fresh.settings.database_url,
        "CRM_MASTER_KEY": TEST_MASTER_KEY,
    }
    done = await run_crm(
        env, "fans", "erase", "--user", "creator-9", "--fan", str(created.fan.fan_id)
    )
    assert done.returncode == 0, done.stderr
    history = await fresh.events.load(fan_stream_id(created.fan.fan_id))
    assert history[-1].event_type == "FanErased"
    assert history[0].erased


async def test_a_missing_or_wrong_master_key_refuses_to_start_and_writes_nothing(
    fresh: bootstrap.Container, client: tuple[httpx.AsyncClient, str]
) -> None:
    http, _ = client
    await create_secret_fan(http)
    before = await _table_counts(fresh.pool)
    url = fresh.settings.database_url

    with pytest.raises(MasterKeyError, match="CRM_MASTER_KEY is not set"):
        await bootstrap.build(msgspec.structs.replace(settings_for(url), master_key=None))
    with pytest.raises(MasterKeyError, match="not the master key of this database"):
        await bootstrap.build(settings_for(url, master_key=generate_master_key()))
    with pytest.raises(MasterKeyError, match=r"not valid base64|bytes"):
        await bootstrap.build(settings_for(url, master_key="short"))

    env = {**os.environ, "DATABASE_URL": url, "CRM_MASTER_KEY": generate_master_key()}
    served = await run_crm(env, "serve", "--port", "0")
    assert served.returncode != 0
    assert "CRM_MASTER_KEY" in served.stderr
    assert "Traceback" not in served.stderr
    assert await _table_counts(fresh.pool) == before


async def test_rotating_the_master_key_keeps_every_fan_readable(
    fresh: bootstrap.Container, client: tuple[httpx.AsyncClient, str]
) -> None:
    http, _ = client
    ids = [
        int((await create_secret_fan(http, f"{SECRETS['handle']}{n}"))["id"])  # type: ignore[call-overload]
        for n in range(3)
    ]
    log_before = await raw_log_text(fresh.pool)
    new_key = generate_master_key()
    env = {
        **os.environ,
        "DATABASE_URL": fresh.settings.database_url,
        "CRM_MASTER_KEY": TEST_MASTER_KEY,
    }
    # "--new-key=": a generated key may start with "-", which argparse would take for an option.
    rotated = await run_crm(env, "keys", "rotate", f"--new-key={new_key}")
    assert rotated.returncode == 0, rotated.stderr
    # The three fans' keys, and the key of the handles' keyed hashes (the first claim made it).
    assert "re-wrapped 4 data keys" in rotated.stdout
    assert await raw_log_text(fresh.pool) == log_before, "rotation must not touch events"

    with pytest.raises(MasterKeyError):
        await bootstrap.build(settings_for(fresh.settings.database_url))
    after = await bootstrap.build(settings_for(fresh.settings.database_url, master_key=new_key))
    try:
        for fan_id in ids:
            [created, _] = await after.events.load(fan_stream_id(fan_id))
            assert isinstance(created.event, Fan.Created)
            assert created.event.email == SECRETS["email"]
            assert created.erased == ()
    finally:
        await after.close()


async def _table_counts(pool: asyncpg.Pool) -> dict[str, object]:
    return {
        table: await pool.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("events", "subject_keys", "api_keys", "fans")
    } | {"check": await pool.fetchval("SELECT token FROM master_key_check")}


def test_a_master_key_never_shows_in_settings_repr() -> None:
    settings = settings_for("postgresql://x/y")
    assert TEST_MASTER_KEY not in repr(settings)
    assert str(uuid.UUID(int=0)) not in TEST_MASTER_KEY
