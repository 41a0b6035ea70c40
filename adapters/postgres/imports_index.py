"""The secret that keys the import index's hashes of handles and platform ids.

Handles are personal data and low in entropy: a plain hash could be reversed by hashing every
plausible handle. A keyed hash cannot be, without this key. It lives in ``subject_keys`` under
the reserved subject ``import-index``, wrapped by the master key like every data key, so
``crm keys rotate`` re-wraps it with the rest and a stolen database alone does not reveal it.
"""

from __future__ import annotations

import hashlib

import asyncpg
import msgspec

from adapters.crypto import MasterKey, MasterKeyError, new_data_key
from application.imports import Row

SUBJECT = "import-index"


async def load_index_key(
    pool: asyncpg.Pool, masters: list[MasterKey], *, subject: str = SUBJECT
) -> bytes:
    """The index key (or another reserved ``subject``'s), made on first use (``masters[0]`` is
    the current master key)."""
    row = await pool.fetchrow(
        "SELECT wrapped_key, master_key_id FROM subject_keys WHERE subject_id = $1", subject
    )
    if row is None:
        await pool.execute(
            "INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id)"
            " VALUES ($1, $2, $3) ON CONFLICT (subject_id) DO NOTHING",
            subject,
            masters[0].wrap(subject, new_data_key()),
            masters[0].key_id,
        )
        row = await pool.fetchrow(
            "SELECT wrapped_key, master_key_id FROM subject_keys WHERE subject_id = $1", subject
        )
    for master in masters:
        if master.key_id == row["master_key_id"]:
            return master.unwrap(subject, row["wrapped_key"])
    raise MasterKeyError(f"the {subject} key is wrapped by unknown master key {row[1]}")


class IndexHasher:
    """Keyed hashes under the index key, for one process's imports.

    ``key_hash`` is HMAC-SHA256: the stored index entries depend on it, so it never changes.
    It starts from the key's inner and outer pads hashed once, as HMAC defines them, where
    ``hmac.digest`` redoes them every call (bench/MEASUREMENTS.md). Row digests are
    keyed BLAKE2b (a MAC in its own right), 16 bytes: they only tell equal rows apart.
    """

    def __init__(self, index_key: bytes) -> None:
        if len(index_key) > _BLOCK:
            raise ValueError("an index key longer than a SHA-256 block would be hashed first")
        block = index_key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
        self._key = index_key

    def key_hash(self, tenant: str, match_key: str) -> bytes:
        inner = self._inner.copy()
        inner.update(f"{tenant}\x00{match_key}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def row_digest(self, tenant: bytes, row: Row) -> bytes:
        """A row's values (its number aside), keyed like the index: rows hold personal data."""
        values = msgspec.msgpack.encode(msgspec.structs.astuple(row)[1:])
        return hashlib.blake2b(
            b"%s\x00%s" % (tenant, values), key=self._key, digest_size=16, person=b"fancrm-row"
        ).digest()


_BLOCK = 64  # SHA-256's block size, in bytes


class LazyIndexHasher:
    """The ``IndexHasher``, made on first call: the event store's unique claims hash their keys
    with it (adapters/postgres/unique_claims.py), as the import hashes its index entries."""

    def __init__(self, pool: asyncpg.Pool, masters: list[MasterKey]) -> None:
        self._pool = pool
        self._masters = masters
        self._hasher: IndexHasher | None = None

    async def __call__(self) -> IndexHasher:
        if self._hasher is None:
            self._hasher = IndexHasher(await load_index_key(self._pool, self._masters))
        return self._hasher
