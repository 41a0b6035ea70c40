"""Apply migrations/NNN_name.sql in order, each once, under an advisory lock.

Two processes starting at once (two API replicas, `crm dev` beside `crm migrate`) serialise on
the lock; the second finds the work done and applies nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Any constant both processes agree on; spells "fancrm" in ASCII.
_LOCK_KEY = 0x66616E63726D
_NAME = re.compile(r"(\d{3,})_[\w\-]+\.sql")


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        match = _NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    found.sort()
    numbers = [number for number, _ in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return found


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            return await _apply_pending(conn, directory)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection, directory: Path) -> list[str]:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            number      integer PRIMARY KEY,
            name        text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    done = {row["number"] for row in await conn.fetch("SELECT number FROM schema_migrations")}
    applied = []
    for number, path in migration_files(directory):
        if number in done:
            continue
        async with conn.transaction():
            await conn.execute(path.read_text())
            await conn.execute(
                "INSERT INTO schema_migrations (number, name) VALUES ($1, $2)", number, path.name
            )
        log.info("migration applied", migration=path.name)
        applied.append(path.name)
    return applied
