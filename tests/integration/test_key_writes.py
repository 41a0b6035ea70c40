"""A key's last write and where its reads must wait, in commit order (transaction id,
position), on a database of its own: these tests write raw rows no projector could read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from adapters.postgres.key_writes import KeyWrites
from application.ports import Checkpoint


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=12)
    assert created is not None
    try:
        yield created
    finally:
        await created.close()


async def append_raw(sql: Any) -> Checkpoint:
    row = await sql.fetchrow(
        "INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data,"
        " metadata) VALUES ($1, $2, 'test', 1, 'Raw', '{}', '{}')"
        " RETURNING transaction_id, position",
        uuid.uuid4(),
        f"raw-{uuid.uuid4().hex}",
    )
    return Checkpoint(row["transaction_id"], row["position"])


async def set_checkpoint(pool: asyncpg.Pool, name: str, at: Checkpoint) -> None:
    await pool.execute(
        "INSERT INTO projection_checkpoints (name, transaction_id, position) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET transaction_id = $2, position = $3",
        name,
        at.transaction_id,
        at.position,
    )


async def test_the_newest_write_is_the_last_in_commit_order_not_the_highest_position(
    pool: asyncpg.Pool,
) -> None:
    """A transaction that began first takes the higher position, but sorts first."""
    async with pool.acquire() as early, early.transaction():
        await early.fetchval("SELECT pg_current_xact_id()")  # its transaction id, now
        later = await append_raw(pool)
        earlier = await append_raw(early)
    assert earlier.position > later.position
    assert earlier < later

    writes = KeyWrites(pool)
    await writes.record("key-a", [earlier.position, later.position])
    await set_checkpoint(pool, "view-at-earlier", earlier)
    await set_checkpoint(pool, "view-at-later", later)

    target = await writes.target("key-a", ["view-at-earlier", "view-at-later", "never-ran"], None)
    assert target.checkpoint == later
    assert sorted(target.behind) == ["never-ran", "view-at-earlier"]
    assert await writes.behind(["view-at-earlier", "view-at-later"], later) == ["view-at-earlier"]
    assert (await writes.target("key-a", ["view-at-later"], None)).behind == []


async def test_an_older_write_recorded_late_never_moves_a_key_back(pool: asyncpg.Pool) -> None:
    first, second = await append_raw(pool), await append_raw(pool)
    writes = KeyWrites(pool)

    await writes.record("key-b", [second.position])
    await writes.record("key-b", [first.position])

    assert (await writes.target("key-b", ["never-ran"], None)).checkpoint == second


async def test_concurrent_writes_of_one_key_all_count(pool: asyncpg.Pool) -> None:
    appended = [await append_raw(pool) for _ in range(20)]
    writes = KeyWrites(pool)

    await asyncio.gather(*(writes.record("key-c", [at.position]) for at in appended))

    assert (await writes.target("key-c", ["never-ran"], None)).checkpoint == max(appended)


async def test_a_min_position_newer_than_the_keys_last_write_is_the_target(
    pool: asyncpg.Pool,
) -> None:
    own, other = await append_raw(pool), await append_raw(pool)
    writes = KeyWrites(pool)
    await writes.record("key-d", [own.position])

    assert (await writes.target("key-d", [], other.position)).checkpoint == other
    assert (await writes.target("key-d", [], own.position)).checkpoint == own
    assert (await writes.target("nobody", ["never-ran"], None)).checkpoint is None
    assert (await writes.target("nobody", [], other.position + 10**6)).unknown
