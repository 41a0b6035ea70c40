"""Unique claims (``StreamWrite.claims``): written in the append's transaction, in the import's
index ``import_fan_keys``, so the API and the import share one answer to "whose handle is it".

The primary key (tenant, keyed hash) is what stops a concurrent duplicate: a second claim of
the same key waits on the first transaction's row and, once that commits, finds it held. The
key itself is never stored: only its HMAC under the index key (adapters/postgres/imports_index.py),
and erasing a fan deletes its entries with its data key (migrations/013_imports.sql).

A holder's token is its (seen_version, fan_version): every claim by the holder and every import
batch applying a row to it changes one of them, so a takeover of an entry found stale in the
log (``Claim.replaces``) loses to a holder that claimed the key again meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from adapters.postgres.imports_index import IndexHasher
from application.errors import ClaimTaken, ConcurrencyError
from application.ports import ClaimHolder, EventMetadata, StreamWrite

# A holder's token, as text: both versions, so either changing changes it.
_TOKEN = "coalesce({0}.seen_version::text, '') || ':' || coalesce({0}.fan_version::text, '')"  # noqa: S105

_CLAIM = f"""
INSERT INTO import_fan_keys AS k (tenant_id, key_hash, stream_id, seen_version)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tenant_id, key_hash) DO UPDATE
SET stream_id = EXCLUDED.stream_id, seen_version = EXCLUDED.seen_version,
    row_digest = CASE WHEN k.stream_id = EXCLUDED.stream_id THEN k.row_digest END,
    fan_version = CASE WHEN k.stream_id = EXCLUDED.stream_id THEN k.fan_version END
WHERE k.stream_id = EXCLUDED.stream_id OR (k.stream_id = $5 AND {_TOKEN.format("k")} = $6)
RETURNING true
"""

_HOLDER = f"""
SELECT k.stream_id, {_TOKEN.format("k")} AS token FROM import_fan_keys k
WHERE k.tenant_id = $1 AND k.key_hash = $2
"""

_RELEASE = """
DELETE FROM import_fan_keys
WHERE tenant_id = $1 AND key_hash = ANY($2::bytea[]) AND stream_id = $3
"""

Hashers = Callable[[], Awaitable[IndexHasher]]


def has_claims(writes: Sequence[StreamWrite]) -> bool:
    return any(write.claims or write.releases for write in writes)


async def hasher_for(hashers: Hashers | None, writes: Sequence[StreamWrite]) -> IndexHasher | None:
    """The hasher the writes' claims need, got BEFORE the append takes its connection: the
    first call loads the index key through the pool, and a transaction waiting on the pool
    for it deadlocks once every connection is such a transaction (concurrent creates)."""
    if not has_claims(writes):
        return None
    if hashers is None:
        raise RuntimeError("this event store was built without the index key: no claims")
    return await hashers()


async def write_claims(
    conn: Any, hasher: IndexHasher | None, writes: Sequence[StreamWrite], metadata: EventMetadata
) -> None:
    """Release, then claim, every write's keys in ``conn``'s transaction; raises ClaimTaken
    (the caller rolls back) for a key another stream holds. Claims go in key-hash order, one
    order for every writer: fewer deadlocks."""
    if not has_claims(writes):
        return
    assert hasher is not None, "hasher_for(writes) gives one whenever they claim"
    claims = []
    for write in writes:
        tenant = (write.metadata or metadata).tenant
        if write.releases:
            hashes = [hasher.key_hash(tenant, key) for key in write.releases]
            await conn.execute(_RELEASE, tenant, hashes, write.stream_id)
        seen = write.expected_version + len(write.events)
        claims += [(hasher.key_hash(tenant, c.key), tenant, c, write, seen) for c in write.claims]
    for key_hash, tenant, claim, write, seen in sorted(claims, key=lambda c: c[0]):
        replaces = claim.replaces
        held = await conn.fetchval(
            _CLAIM,
            tenant,
            key_hash,
            write.stream_id,
            seen,
            None if replaces is None else replaces.stream_id,
            None if replaces is None else replaces.token,
        )
        if not held:
            row = await conn.fetchrow(_HOLDER, tenant, key_hash)
            if row is None:  # released while we waited: another try will find it free
                raise ConcurrencyError("a claimed key changed hands meanwhile")
            raise ClaimTaken(claim.key, ClaimHolder(row["stream_id"], row["token"]))
