"""Test databases: a migrated template, cloned per test session or per test that needs a
clean log. Uses DATABASE_URL's server when set, else an embedded Postgres in a temp folder."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from adapters.embedded import EmbeddedStack
from adapters.postgres.migrate import migrate


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class TestServer:
    """One Postgres server for the whole run, and a migrated template database on it."""

    def __init__(self) -> None:
        self._embedded: EmbeddedStack | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.admin_url = os.environ.get("DATABASE_URL", "")
        self.template = f"fancrm_template_{uuid.uuid4().hex[:8]}"
        self._created: list[str] = []

    def start(self) -> None:
        if not self.admin_url:
            self._tmp = tempfile.TemporaryDirectory(prefix="fancrm-test-")
            self._embedded = EmbeddedStack(Path(self._tmp.name))
            self.admin_url = self._embedded.start_postgres()

    async def create_template(self) -> None:
        await self._execute(f'CREATE DATABASE "{self.template}"')
        await migrate(with_database(self.admin_url, self.template))

    async def clone(self, prefix: str = "fancrm_test") -> str:
        """A new database holding exactly the migrated schema."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        await self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self._created.append(name)
        return with_database(self.admin_url, name)

    async def drop_all(self) -> None:
        for name in [*self._created, self.template]:
            await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
