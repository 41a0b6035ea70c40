"""The secret that keys the import index's hashes of handles and platform ids.

Handles are personal data and low in entropy: a plain hash could be reversed by hashing every
plausible handle. A keyed hash cannot be, without this key. It lives in ``subject_keys`` under
the reserved subject ``import-index``, wrapped by the master key like every data key, so
``crm keys rotate`` re-wraps it with the rest and a stolen database alone does not reveal it.
"""

from __future__ import annotations

import hmac

import asyncpg
import msgspec

from adapters.crypto import MasterKey, MasterKeyError, new_data_key
from application.imports import Row

SUBJECT = "import-index"


async def load_index_key(pool: asyncpg.Pool, masters: list[MasterKey]) -> bytes:
    """The index key, made on first use (``masters[0]`` is the current master key)."""
    row = await pool.fetchrow(
        "SELECT wrapped_key, master_key_id FROM subject_keys WHERE subject_id = $1", SUBJECT
    )
    if row is None:
        await pool.execute(
            "INSERT INTO subject_keys (subject_id, wrapped_key, master_key_id)"
            " VALUES ($1, $2, $3) ON CONFLICT (subject_id) DO NOTHING",
            SUBJECT,
            masters[0].wrap(SUBJECT, new_data_key()),
            masters[0].key_id,
        )
        row = await pool.fetchrow(
            "SELECT wrapped_key, master_key_id FROM subject_keys WHERE subject_id = $1", SUBJECT
        )
    for master in masters:
        if master.key_id == row["master_key_id"]:
            return master.unwrap(SUBJECT, row["wrapped_key"])
    raise MasterKeyError(f"the import index key is wrapped by unknown master key {row[1]}")


def key_hash(index_key: bytes, tenant: str, match_key: str) -> bytes:
    return hmac.digest(index_key, f"{tenant}\x00{match_key}".encode(), "sha256")


def row_digest(index_key: bytes, tenant: bytes, row: Row) -> bytes:
    """A row's values (its number aside), keyed like the index: rows hold personal data."""
    values = msgspec.msgpack.encode(msgspec.structs.astuple(row)[1:])
    return hmac.digest(index_key, b"row\x00%s\x00%s" % (tenant, values), "sha256")
