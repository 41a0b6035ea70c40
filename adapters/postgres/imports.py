"""The import store: a transaction per batch (adapters/postgres/imports_batch.py does the
work inside it), and indexing the fans that imports did not create."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import structlog

from adapters.crypto import MasterKey
from adapters.postgres.event_store import questions
from adapters.postgres.imports_batch import CONFLICTS, PostgresImportBatch
from adapters.postgres.imports_index import IndexHasher, load_index_key
from adapters.postgres.listen import Notifier
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.written_positions import note_written
from application.errors import ConcurrencyError
from application.import_batch import match_keys
from application.imports import FanRow, Row
from domain.fan import fan_stream_id

log = structlog.get_logger(__name__)

# The read model may still show a fan erased a moment ago: never index an erased fan again.
# A key another fan holds stays that fan's.
_INDEX_FANS = """
INSERT INTO import_fan_keys (tenant_id, key_hash, stream_id, seen_version)
SELECT $1, c.key_hash, c.stream_id, c.seen_version
FROM unnest($2::bytea[], $3::text[], $4::int[]) AS c(key_hash, stream_id, seen_version)
WHERE NOT EXISTS (
    SELECT 1 FROM subject_keys s WHERE s.subject_id = c.stream_id AND s.destroyed_at IS NOT NULL
)
ON CONFLICT (tenant_id, key_hash) DO UPDATE
SET seen_version = greatest(import_fan_keys.seen_version, EXCLUDED.seen_version)
WHERE import_fan_keys.stream_id = EXCLUDED.stream_id
"""


class PostgresImportStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        personal: PersonalDataCodec,
        masters: list[MasterKey],
        notifier: Notifier | None = None,
    ) -> None:
        self._pool = pool
        self._personal = personal
        self._masters = masters
        self._notifier = notifier
        self._hasher: IndexHasher | None = None

    async def index_existing_fans(self, tenant: str) -> None:
        """Index the tenant's fans under the handles and platform ids the fans read model
        shows and no import indexed: fans made or renamed through the API. See
        application/imports.py for what this cannot see."""
        hasher = await self._index_hasher()
        rows = await questions.unindexed_fans(self._pool, tenant)
        claims: dict[bytes, tuple[str, int]] = {}
        for fan_id, platform, platform_id, handle, identity_version in rows:
            fan = FanRow(row=0, platform=platform, platform_id=platform_id, handle=handle)
            for key in match_keys(fan):
                claims.setdefault(
                    hasher.key_hash(tenant, key), (fan_stream_id(fan_id), identity_version)
                )
        hashes = sorted(claims)
        for start in range(0, len(hashes), 5000):
            chunk = hashes[start : start + 5000]
            await self._pool.execute(
                _INDEX_FANS,
                tenant,
                chunk,
                [claims[h][0] for h in chunk],
                [claims[h][1] for h in chunk],
            )

    async def claim_handles_of_older_fans(self) -> None:
        """Index, tenant by tenant, the fans made before handles were claimed
        (migrations/029_unique_handles.sql says what becomes of duplicates), then cross the
        tenant off. Idempotent: processes starting at once may both do a tenant."""
        if await self._pool.fetchval("SELECT to_regclass('handle_claims_backfill') IS NULL"):
            return  # not migrated yet: the next start does it
        for (tenant,) in await self._pool.fetch("SELECT tenant_id FROM handle_claims_backfill"):
            await self.index_existing_fans(tenant)
            await self._pool.execute(
                "DELETE FROM handle_claims_backfill WHERE tenant_id = $1", tenant
            )
            log.info("handles claimed for the fans made before", tenant=tenant)

    async def row_digests(self, tenant: str) -> Callable[[Row], bytes]:
        return functools.partial((await self._index_hasher()).row_digest, tenant.encode())

    async def _index_hasher(self) -> IndexHasher:
        if self._hasher is None:
            self._hasher = IndexHasher(await load_index_key(self._pool, self._masters))
        return self._hasher

    @asynccontextmanager
    async def batch(self, tenant: str) -> AsyncIterator[PostgresImportBatch]:
        hasher = await self._index_hasher()
        async with self._pool.acquire() as conn:
            unit = PostgresImportBatch(conn, tenant, hasher, self._personal)
            try:
                async with conn.transaction():
                    # A batch's commit need not wait for its WAL flush: a crash may lose the
                    # last batches, but each whole, job progress included (one transaction),
                    # so the job resumes from what survived. The job's Completed event is
                    # appended with a synchronous commit, which flushes every batch before it.
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    yield unit
            except CONFLICTS as error:
                raise ConcurrencyError(f"import batch conflicted: {error}") from None
            finally:
                # No key of this batch stays in the key cache: a cached key costs ~2.5 KB,
                # and a million-row import would fill the cache (and this process) for no
                # reader. New fans' keys are never cached; loaded ones are forgotten here.
                if self._personal.keys is not None:
                    for subject in unit.loaded_subjects:
                        self._personal.keys.forget(subject)
        if unit.appended:
            note_written(unit.position)
            if self._notifier is not None:
                self._notifier.poke("events")
