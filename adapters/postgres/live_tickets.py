"""Single-use, short-lived tickets for the live stream (migrations/041_live_tickets.sql).

A ticket is 32 random bytes; the table keeps only its SHA-256, so a leaked table opens
nothing. Redeeming deletes the row in the same statement that checks its expiry: two
processes redeeming one ticket at once cannot both succeed.
"""

from __future__ import annotations

import hashlib
import secrets

import asyncpg
import msgspec

from adapters.postgres.api_keys import Principal

TICKET_SECONDS = 30
# Tickets are url-safe base64 of 32 bytes (43 characters): anything longer is not one.
_MAX_TICKET = 64

_ISSUE = """
WITH swept AS (DELETE FROM live_tickets WHERE expires_at < now() - interval '1 minute')
INSERT INTO live_tickets (ticket_hash, principal, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""

_REDEEM = """
DELETE FROM live_tickets WHERE ticket_hash = $1 RETURNING principal, expires_at > now()
"""


def _hash(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode()).digest()


async def issue_ticket(
    pool: asyncpg.Pool, principal: Principal, seconds: int = TICKET_SECONDS
) -> str:
    """A new ticket acting as ``principal`` (the account it acts on included)."""
    ticket = secrets.token_urlsafe(32)
    # The pool encodes jsonb itself (adapters/postgres/pool.py): it is given the structure.
    await pool.execute(_ISSUE, _hash(ticket), msgspec.to_builtins(principal), seconds)
    return ticket


async def redeem_ticket(pool: asyncpg.Pool, ticket: str) -> Principal | None:
    """The principal of ``ticket`` if it exists and has not expired; it is used up either way."""
    if not ticket or len(ticket) > _MAX_TICKET:
        return None
    row = await pool.fetchrow(_REDEEM, _hash(ticket))
    if row is None or not row[1]:
        return None
    return msgspec.convert(row[0], Principal)
