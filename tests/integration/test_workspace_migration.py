"""Migration 030 on a database of the previous release: every key made before keeps its
tenant and role, and belongs to the workspace of its own tenant."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from adapters.postgres.api_keys import find_principal, hash_key
from adapters.postgres.migrate import migrate, migration_files
from tests.support.databases import TestServer, with_database


async def test_every_key_of_the_previous_release_works_as_before_in_a_workspace_of_its_own(
    test_server: TestServer, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for number, path in migration_files():
        if number < 30:
            (before / path.name).symlink_to(path)
    name = f"fancrm_migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(test_server.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(test_server.admin_url, name)
    try:
        await migrate(url, before)
        keys = {role: f"crm_{role}_{uuid.uuid4().hex}" for role in ("creator", "auditor", "admin")}
        db = await asyncpg.connect(url)
        try:
            for role, key in keys.items():
                await db.execute(
                    "INSERT INTO api_keys (key_id, key_hash, user_id, role)"
                    " VALUES ($1, $2, $3, $4)",
                    role,
                    hash_key(key),
                    f"user-{role}",
                    role,
                )
        finally:
            await db.close()
        assert "030_workspaces.sql" in await migrate(url)
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            for role, key in keys.items():
                principal = await find_principal(pool, key)
                assert principal is not None, role
                assert (principal.key_id, principal.user_id, principal.role) == (
                    role,
                    f"user-{role}",
                    role,
                )
                assert principal.workspace_id == f"user-{role}"
                assert principal.member_id is None
                assert principal.permissions is None
        finally:
            await pool.close()
    finally:
        admin = await asyncpg.connect(test_server.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
