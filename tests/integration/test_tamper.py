"""Tamper evidence on a real Postgres: the sealer chains the log in commit order, and
verification finds an event changed, removed, swapped or inserted in SQL at its position.

Each test has a database of its own: it reads and rewrites the whole log."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from adapters.postgres.event_chain import CHANGED, INSERTED, MOVED, REMOVED
from adapters.postgres.event_chain_store import PostgresEventChain
from application import fans
from application.context import CommandContext
from tests.support.settings import settings_for
from worker.sealer import run_sealer

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
TENANT = "user-tamper"


@pytest.fixture
async def stack(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    built = await bootstrap.build(settings_for(fresh_database_url, pool_min_size=1))
    try:
        yield built
    finally:
        await built.close()


def _ctx() -> CommandContext:
    return CommandContext(tenant=TENANT, actor="test", correlation_id=uuid.uuid4().hex)


async def _some_history(container: bootstrap.Container, fans_count: int = 4) -> list[int]:
    """Fans created and updated in separate transactions; returns the log's positions."""
    for n in range(fans_count):
        created = await fans.create_fan(
            fans.CreateFan(name=f"Fan {n}", email=f"f{n}@example.com", value_cents=n),
            _ctx(),
            store=container.events,
            ids=container.ids,
        )
        await fans.update_fan(
            fans.UpdateFan(fan_id=created.fan.fan_id, changes={"value_cents": 100 + n}),
            _ctx(),
            store=container.events,
        )
    rows = await container.pool.fetch(
        "SELECT position FROM events ORDER BY transaction_id, position"
    )
    return [row["position"] for row in rows]


async def _tamper(container: bootstrap.Container, *statements: str) -> None:
    """Rewrite the log behind the application's back, as someone with database access could."""
    async with container.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        for statement in statements:
            await conn.execute(statement)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")


async def _sealed(container: bootstrap.Container) -> tuple[PostgresEventChain, list[int]]:
    positions = await _some_history(container)
    chain = PostgresEventChain(container.pool, batch_size=3)  # several batches
    assert await chain.catch_up() == len(positions)
    report = await chain.verify()
    assert report.tampering is None
    assert report.checked == len(positions)
    return chain, positions


async def test_an_untouched_log_verifies_and_the_head_is_its_last_event(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    head = await chain.head()
    assert (head.sealed, head.position) == (len(positions), positions[-1])
    assert await chain.catch_up() == 0


async def test_updating_one_events_data_is_detected_at_its_position(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    target = positions[3]
    await _tamper(
        stack,
        "UPDATE events SET data = jsonb_set(data, '{value_cents}', '999999')"
        f" WHERE position = {target}",
    )
    found = (await chain.verify()).tampering
    assert found is not None
    assert (found.kind, found.position, found.seq) == (CHANGED, target, 4)


async def test_updating_one_events_metadata_is_detected_at_its_position(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    target = positions[-1]
    await _tamper(
        stack,
        'UPDATE events SET metadata = metadata || \'{"actor": "someone else"}\''
        f" WHERE position = {target}",
    )
    found = (await chain.verify()).tampering
    assert found is not None
    assert (found.kind, found.position) == (CHANGED, target)


async def test_deleting_one_event_is_detected_at_its_position(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    target = positions[5]
    await _tamper(stack, f"DELETE FROM events WHERE position = {target}")
    found = (await chain.verify()).tampering
    assert found is not None
    assert (found.kind, found.position) == (REMOVED, target)


async def test_swapping_two_events_is_detected_at_the_first_of_them(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    first, second = positions[2], positions[6]
    # Each event takes the other's place in the log: its position and its transaction.
    await _tamper(
        stack,
        "CREATE TEMP TABLE swapped ON COMMIT DROP AS SELECT * FROM events"
        f" WHERE position IN ({first}, {second})",
        f"DELETE FROM events WHERE position IN ({first}, {second})",
        """
        INSERT INTO events (position, transaction_id, event_id, stream_id, stream_type, version,
                            event_type, data, metadata, recorded_at)
        OVERRIDING SYSTEM VALUE
        SELECT o.position, o.transaction_id, s.event_id, s.stream_id, s.stream_type, s.version,
               s.event_type, s.data, s.metadata, s.recorded_at
        FROM swapped s JOIN swapped o ON o.position <> s.position
        """,
    )
    found = (await chain.verify()).tampering
    assert found is not None
    assert (found.kind, found.position) == (MOVED, first)


async def test_an_event_inserted_inside_the_sealed_log_is_detected(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    before = positions[4]
    await _tamper(
        stack,
        f"""
        INSERT INTO events (position, transaction_id, event_id, stream_id, stream_type, version,
                            event_type, data, metadata, recorded_at)
        OVERRIDING SYSTEM VALUE
        SELECT 1000000, transaction_id, gen_random_uuid(), 'fan-999999', stream_type, 1,
               event_type, data, metadata, recorded_at
        FROM events WHERE position = {before}
        """,
    )
    found = (await chain.verify()).tampering
    assert found is not None
    assert (found.kind, found.position) == (INSERTED, 1000000)


async def test_erasing_a_fan_leaves_the_chain_valid(stack: bootstrap.Container) -> None:
    chain, _ = await _sealed(stack)
    stream = await stack.pool.fetchval("SELECT stream_id FROM events ORDER BY position LIMIT 1")
    fan_id = int(stream.removeprefix("fan-"))
    await fans.erase_fan(fans.EraseFan(fan_id=fan_id), _ctx(), store=stack.events)
    assert await chain.catch_up() == 1
    report = await chain.verify()
    assert report.tampering is None


async def test_the_sealer_never_seals_past_a_transaction_still_running(
    stack: bootstrap.Container, fresh_database_url: str
) -> None:
    chain, positions = await _sealed(stack)
    slow = await asyncpg.connect(fresh_database_url)
    try:
        transaction = slow.transaction()
        await transaction.start()
        # Takes a transaction id (and a position) now, commits only later.
        await slow.execute(
            "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data,"
            " metadata) VALUES (gen_random_uuid(), 'late-1', 'late', 1, 'FanDeleted', '{}',"
            ' \'{"tenant": "t", "actor": "a", "correlation_id": "c", "causation_id": "c"}\')'
        )
        await _some_history(stack, fans_count=1)
        assert await chain.catch_up() == 0
        await transaction.commit()
    finally:
        await slow.close()
    assert await chain.catch_up() == 3
    report = await chain.verify()
    assert report.tampering is None
    assert report.checked == len(positions) + 3


async def test_the_sealer_worker_follows_the_log_and_the_api_publishes_its_head(
    stack: bootstrap.Container,
) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_sealer(stack, stop, poll_interval=0.05))
    try:
        positions = await _some_history(stack, fans_count=2)
        chain = PostgresEventChain(stack.pool)
        async with asyncio.timeout(20):
            while (await chain.head()).position != positions[-1]:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    key, _ = await create_api_key(stack.pool, user_id="auditor", role="auditor")
    transport = httpx.ASGITransport(app=create_app(container=stack))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/api/audit/head", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    head = await chain.head()
    assert response.json()["position"] == positions[-1]
    assert response.json()["sealed"] == len(positions)
    assert response.json()["hash"] == head.hash.hex()


async def _crm(database_url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        *args,
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_crm_audit_verify_reports_the_tampered_position_and_fails(
    stack: bootstrap.Container, fresh_database_url: str
) -> None:
    chain, positions = await _sealed(stack)
    head = await chain.head()
    status, out = await _crm(
        fresh_database_url, "audit", "verify", "--expect", f"{head.position}:{head.hash.hex()}"
    )
    assert status == 0, out
    assert f"ok: {len(positions)} events verified" in out
    await _tamper(stack, f"DELETE FROM events WHERE position = {positions[1]}")
    status, out = await _crm(fresh_database_url, "audit", "verify")
    assert status == 1, out
    assert f"TAMPERED: removed at position {positions[1]}" in out


async def test_two_sealers_at_once_seal_each_event_once(stack: bootstrap.Container) -> None:
    positions = await _some_history(stack, fans_count=6)
    sealers = [PostgresEventChain(stack.pool, batch_size=2) for _ in range(2)]
    sealed = await asyncio.gather(*(sealer.catch_up() for sealer in sealers))
    assert sum(sealed) == len(positions)
    report = await sealers[0].verify()
    assert report.tampering is None
    assert report.checked == len(positions)


async def test_swapping_two_events_data_is_detected_at_the_first_of_them(
    stack: bootstrap.Container,
) -> None:
    chain, positions = await _sealed(stack)
    first, second = positions[1], positions[3]
    await _tamper(
        stack,
        "UPDATE events e SET data = o.data FROM events o"
        f" WHERE (e.position, o.position) IN (({first}, {second}), ({second}, {first}))",
    )
    found = (await chain.verify()).tampering
    assert found is not None
    assert (found.kind, found.position) == (CHANGED, first)


async def test_crm_audit_verify_proves_no_one_rewrote_which_member_did_what(
    stack: bootstrap.Container, fresh_database_url: str
) -> None:
    """A member's work credited to another member in SQL (to move a chatter's revenue, say)
    fails verification at the first event rewritten."""
    for member in ("ann", "bob"):
        await fans.create_fan(
            fans.CreateFan(name=f"{member}'s fan"),
            CommandContext(tenant=TENANT, actor=f"member:{member}", correlation_id=member),
            store=stack.events,
            ids=stack.ids,
        )
    chain = PostgresEventChain(stack.pool)
    await chain.catch_up()
    status, out = await _crm(fresh_database_url, "audit", "verify")
    assert status == 0, out
    anns = await stack.pool.fetch(
        "SELECT position FROM events WHERE metadata->>'actor' = 'member:ann' ORDER BY position"
    )
    assert anns
    await _tamper(
        stack,
        'UPDATE events SET metadata = metadata || \'{"actor": "member:bob"}\''
        " WHERE metadata->>'actor' = 'member:ann'",
    )
    status, out = await _crm(fresh_database_url, "audit", "verify")
    assert status == 1, out
    assert f"TAMPERED: changed at position {anns[0]['position']}" in out
