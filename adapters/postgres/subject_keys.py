"""Per-subject data keys in Postgres, unwrapped with the master key and cached briefly.

Unwrapped keys live only in this process's memory, for ``ttl`` seconds; they are never logged
(AESGCM objects do not print their key).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto import MasterKey, MasterKeyError, new_data_key


class SubjectErased(Exception):
    """The subject's key was destroyed: its personal data can be neither read nor written."""


ERASED = None  # the cached value for a subject whose key was destroyed
_CACHE_LIMIT = 50_000


class SubjectKeys:
    def __init__(
        self,
        pool: asyncpg.Pool,
        master: MasterKey,
        previous: Iterable[MasterKey] = (),
        *,
        ttl: float = 60.0,
    ) -> None:
        self._pool = pool
        self.master = master
        self._masters = {m.key_id: m for m in (master, *previous)}
        self._ttl = ttl
        self._cache: dict[str, tuple[float, AESGCM | None]] = {}

    async def verify_master_key(self) -> None:
        """Refuse to run with a master key other than the one the data is wrapped with."""
        row = await self._pool.fetchrow("SELECT key_id, token FROM master_key_check WHERE id = 1")
        if row is None:
            await self._pool.execute(
                "INSERT INTO master_key_check (id, key_id, token) VALUES (1, $1, $2)"
                " ON CONFLICT (id) DO NOTHING",
                self.master.key_id,
                self.master.check_token(),
            )
            row = await self._pool.fetchrow(
                "SELECT key_id, token FROM master_key_check WHERE id = 1"
            )
        # During a rotation the check may still be wrapped by a previous master key.
        if not any(master.verifies(row["token"]) for master in self._masters.values()):
            raise MasterKeyError(
                f"CRM_MASTER_KEY (key id {self.master.key_id}) is not the master key of this "
                f"database (key id {row['key_id']}); refusing to start. Set the right key, or "
                "rotate with `crm keys rotate`."
            )

    def cached(self, subject: str) -> tuple[bool, AESGCM | None]:
        hit = self._cache.get(subject)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def remember(self, subject: str, aead: AESGCM | None) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[subject] = (time.monotonic() + self._ttl, aead)

    def forget(self, subject: str) -> None:
        self._cache.pop(subject, None)

    async def load(self, conn: Any, subjects: Iterable[str]) -> dict[str, AESGCM | None]:
        """Keys of these subjects (None for erased ones); absent from the result: no key yet."""
        found: dict[str, AESGCM | None] = {}
        missing = []
        for subject in set(subjects):
            hit, aead = self.cached(subject)
            if hit:
                found[subject] = aead
            else:
                missing.append(subject)
        if missing:
            rows = await conn.fetch(
                "SELECT subject_id, wrapped_key, master_key_id FROM subject_keys"
                " WHERE subject_id = ANY($1::text[])",
                missing,
            )
            for row in rows:
                aead = self._unwrap(row) if row["wrapped_key"] is not None else ERASED
                self.remember(row["subject_id"], aead)
                found[row["subject_id"]] = aead
        return found

    def new_key(self, subject: str) -> tuple[AESGCM, bytes]:
        """A fresh data key and its wrapped form, to be stored with the subject's first event."""
        data_key = new_data_key()
        return AESGCM(data_key), self.master.wrap(subject, data_key)

    async def rotate(self, batch_size: int = 1000) -> int:
        """Re-wrap every live data key with the current master key; events are untouched."""
        rotated = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT subject_id, wrapped_key, master_key_id FROM subject_keys"
                    " WHERE wrapped_key IS NOT NULL AND master_key_id <> $1"
                    " ORDER BY subject_id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    self.master.key_id,
                    batch_size,
                )
                if not rows:
                    break
                await conn.executemany(
                    "UPDATE subject_keys SET wrapped_key = $2, master_key_id = $3"
                    " WHERE subject_id = $1",
                    [
                        (
                            row["subject_id"],
                            self.master.wrap(row["subject_id"], self._unwrap_raw(row)),
                            self.master.key_id,
                        )
                        for row in rows
                    ],
                )
                rotated += len(rows)
        await self._pool.execute(
            "INSERT INTO master_key_check (id, key_id, token) VALUES (1, $1, $2)"
            " ON CONFLICT (id) DO UPDATE SET key_id = $1, token = $2, updated_at = now()",
            self.master.key_id,
            self.master.check_token(),
        )
        return rotated

    def _unwrap(self, row: Any) -> AESGCM:
        return AESGCM(self._unwrap_raw(row))

    def _unwrap_raw(self, row: Any) -> bytes:
        master = self._masters.get(row["master_key_id"])
        if master is None:
            raise MasterKeyError(
                f"the data key of {row['subject_id']} is wrapped by master key "
                f"{row['master_key_id']}, which is not configured (CRM_PREVIOUS_MASTER_KEYS)"
            )
        return master.unwrap(row["subject_id"], row["wrapped_key"])
