"""The ``idempotency_keys`` table: every statement on it lives here (the HTTP layer decides
when to reserve, replay or free a key: adapters/http/idempotency.py).

Whether a key's command committed is a fact Postgres records, not a guess made after an
error: while a request holds a reservation (``holding``), every event append it makes marks
the reservation ``committed`` in the same statement as the events (``RESERVED_CTE``, used by
adapters/postgres/event_store/recorder.py), and appends nothing if the request no longer
holds it. So

- ``committed`` false means no event of the request's command is in the log, and none can
  commit later: its append needs the reservation, whose row lock orders it against
  ``release``; freeing the key is safe;
- ``committed`` true means some did: the key is kept.

Reservations expire (``ttl``); an expired key may be reserved anew, and ``delete_expired``
removes expired rows in small batches that skip rows a running command has locked.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import msgspec


class Reservation(NamedTuple):
    """A key held by one request (``holder``), until its response is stored or it is freed."""

    tenant: str
    key: str
    holder: uuid.UUID


class StoredKey(NamedTuple):
    request_hash: bytes
    holder: uuid.UUID | None
    committed: bool
    status: int | None
    body: bytes | None
    headers: dict[str, str]


_current: ContextVar[Reservation | None] = ContextVar("idempotency_reservation", default=None)


def current() -> Reservation | None:
    """The reservation the running request's appends complete (None: no Idempotency-Key)."""
    return _current.get()


@contextlib.contextmanager
def holding(reservation: Reservation) -> Iterator[None]:
    token = _current.set(reservation)
    try:
        yield
    finally:
        _current.reset(token)


# The body of an append's CTE (composed by adapters/postgres/event_store/recorder.py) that
# marks the request's reservation committed, if the append's streams are where it expected
# them (``moved`` empty) and the request still holds the key; the append inserts its events
# only if this returns a row. Parameters by name: ``reserved_arguments``, and the append's
# stream ids (``checked_streams``, chr(30)-joined), kept so that erasing a fan forgets the
# responses of commands that wrote its stream (migrations/026).
RESERVED_CTE = """
UPDATE idempotency_keys SET committed = true,
    streams = ARRAY(
        SELECT DISTINCT s
        FROM unnest(coalesce(streams, '{}') || string_to_array(:checked_streams::text, chr(30))) s
    )
WHERE tenant_id = :reservation_tenant AND key = :reservation_key
  AND holder = :reservation_holder
  AND NOT EXISTS (SELECT 1 FROM moved)
RETURNING 1
"""


def reserved_arguments(reservation: Reservation) -> dict[str, Any]:
    return {
        "reservation_tenant": reservation.tenant,
        "reservation_key": reservation.key,
        "reservation_holder": reservation.holder,
    }


async def still_held(conn: Any, reservation: Reservation) -> bool:
    """Whether the request still holds its key (in the append's own connection)."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND holder = $3",
            *reservation,
        )
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IdempotencyKeys:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_seconds: float,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._pool = pool
        self.ttl = timedelta(seconds=ttl_seconds)
        # The clock that says when a reservation expires (replaceable in tests).
        self.now = now

    async def reserve(self, tenant: str, key: str, request_hash: bytes) -> Reservation | None:
        """The key for this request, if it is free or expired; None if it is held."""
        holder = uuid.uuid4()
        now = self.now()
        taken = await self._pool.fetchval(
            """
            INSERT INTO idempotency_keys
                (tenant_id, key, request_hash, holder, expires_at, created_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, holder = EXCLUDED.holder,
                expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at,
                committed = false, status = NULL, body = NULL, headers = NULL
            WHERE idempotency_keys.expires_at <= $6
            RETURNING true
            """,
            tenant,
            key,
            request_hash,
            holder,
            now + self.ttl,
            now,
        )
        return Reservation(tenant, key, holder) if taken else None

    async def stored(self, tenant: str, key: str) -> StoredKey | None:
        row = await self._pool.fetchrow(
            "SELECT request_hash, holder, committed, status, body, headers::text AS headers"
            " FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            tenant,
            key,
        )
        if row is None:
            return None
        return StoredKey(
            request_hash=bytes(row["request_hash"]),
            holder=row["holder"],
            committed=row["committed"],
            status=row["status"],
            body=bytes(row["body"]) if row["body"] is not None else None,
            headers=msgspec.json.decode(row["headers"]) if row["headers"] else {},
        )

    async def take_over(self, seen: StoredKey, tenant: str, key: str) -> Reservation | None:
        """Hold a key whose holder ran out of time without committing (it may have died): its
        appends now find the key held by another and insert nothing. None if meanwhile it
        committed, answered or changed hands."""
        holder = uuid.uuid4()
        taken = await self._pool.fetchval(
            "UPDATE idempotency_keys SET holder = $4"
            " WHERE tenant_id = $1 AND key = $2 AND holder IS NOT DISTINCT FROM $3"
            "   AND NOT committed AND status IS NULL"
            " RETURNING true",
            tenant,
            key,
            seen.holder,
            holder,
        )
        return Reservation(tenant, key, holder) if taken else None

    async def complete(
        self, reservation: Reservation, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        """Store the response that retries with this key will get."""
        await self._pool.execute(
            "UPDATE idempotency_keys SET status = $4, body = $5, headers = $6::text::jsonb"
            " WHERE tenant_id = $1 AND key = $2 AND holder = $3",
            *reservation,
            status,
            body,
            msgspec.json.encode(headers).decode(),
        )

    async def release(self, reservation: Reservation) -> bool:
        """Free the key if its command committed nothing (True); else keep it (False).

        A command's append still running holds the reservation's row lock: this waits for it
        and then sees whether it committed."""
        freed = await self._pool.fetchval(
            "DELETE FROM idempotency_keys"
            " WHERE tenant_id = $1 AND key = $2 AND holder = $3 AND NOT committed"
            " RETURNING true",
            *reservation,
        )
        return bool(freed)

    async def delete_expired(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired keys; how many were deleted. Rows locked by a running
        command are skipped (next time), so this never waits on one or blocks it."""
        status: Any = await self._pool.execute(
            """
            DELETE FROM idempotency_keys WHERE (tenant_id, key) IN (
                SELECT tenant_id, key FROM idempotency_keys
                WHERE expires_at <= $1
                ORDER BY expires_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
            )
            """,
            self.now(),
            limit,
        )
        return int(str(status).rsplit(" ", 1)[-1])
