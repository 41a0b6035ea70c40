from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

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


async def test_a_deployment_upgraded_to_cohorts_by_subscription_replays_its_cohorts(
    test_server: TestServer, tmp_path: Path
) -> None:
    """Rows placed by first-seen month alone cannot be told apart from the right ones without
    the log: 024 empties the cohorts read model and its checkpoints (an unfinished rebuild of
    it too), so its projector or a rebuild replays it; other read models are left alone."""
    before = tmp_path / "before"
    before.mkdir()
    for number, path in migration_files():
        if number < 24:
            (before / path.name).symlink_to(path)
    name = f"fancrm_migrate_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(test_server.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(test_server.admin_url, name)
    try:
        await migrate(url, before)
        db = await asyncpg.connect(url)
        try:
            await db.execute(
                """
                INSERT INTO analytics_fan_activity
                    (fan_id, tenant_id, cohort_month, first_seen_at, last_active_at)
                VALUES (1, 'a', '2026-12-01', now(), now());
                INSERT INTO projection_checkpoints (name, position) VALUES
                    ('analytics_cohorts', 7), ('analytics_cohorts@rebuild_all', 5),
                    ('fans@rebuild_all', 5), ('fans', 7);
                CREATE SCHEMA rebuild_all;
                CREATE TABLE rebuild_all.analytics_fan_activity
                    (LIKE public.analytics_fan_activity INCLUDING ALL);
                """
            )
            # Later migrations, if any, follow it.
            assert (await migrate(url))[0] == "024_cohorts_by_subscription.sql"
            assert await db.fetchval("SELECT count(*) FROM analytics_fan_activity") == 0
            assert await db.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = 'analytics_fan_activity' AND column_name = 'subscribed_at'"
            )
            assert not await db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'rebuild_all')"
            )
            left = await db.fetch("SELECT name FROM projection_checkpoints ORDER BY name")
            assert [row["name"] for row in left] == ["fans"]
        finally:
            await db.close()
    finally:
        conn = await asyncpg.connect(test_server.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
