from __future__ import annotations

import asyncio
import uuid

import asyncpg

from adapters.postgres.migrate import migrate, migration_files
from tests.support.databases import TestServer, with_database


async def test_two_processes_migrating_at_once_apply_each_migration_once(
    test_server: TestServer,
) -> None:
    name = f"fancrm_migrate_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(test_server.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(test_server.admin_url, name)
    try:
        first, second = await asyncio.gather(migrate(url), migrate(url))
        expected = [path.name for _, path in migration_files()]
        assert sorted([*first, *second]) == expected
        assert [] in (first, second)
        assert await migrate(url) == []
        db = await asyncpg.connect(url)
        try:
            rows = await db.fetch("SELECT name FROM schema_migrations ORDER BY number")
        finally:
            await db.close()
        assert [row["name"] for row in rows] == expected
    finally:
        conn = await asyncpg.connect(test_server.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
