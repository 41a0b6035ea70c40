"""The Idempotency-Key header on POST endpoints: a retried request gets the first response.

The key is reserved per (tenant, key) with a hash of the request before the command runs, and
the first response stored with it after. A retry with the same key and the same request
answers that response without running the command again (waiting a few seconds for a first
request still running); the same key with another request is refused (422).

So a command runs at most once per key, whatever crashes: a crash between the command's commit
and storing its response leaves the key reserved without a response, and a retry is answered
409 (its outcome is unknown here; the client looks before it tries anew with a fresh key)
instead of running the command a second time: a second campaign to every fan, a second fan. A
command refused (4xx) before it recorded anything frees the key for a corrected retry. For
sending messages the key also decides the message id, a second guard against a double send.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from application.errors import ApplicationError, ConcurrencyError
from domain.errors import DomainError, InvalidValue

HEADER = "Idempotency-Key"
# How long a retry waits for the first request with its key to store a response.
WAIT_FOR_FIRST_SECONDS = 5.0
# Refusals raised before a command records anything: they free the key.
_REFUSED = (ApplicationError, DomainError, HTTPException)
_NAMESPACE = uuid.UUID("8a1e9f52-3c1b-4f0e-9d1c-6f2f0c2a7b11")


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 255:
        raise InvalidValue("idempotency_key", "must be 1 to 255 characters")
    return key


def _canonical(body: bytes) -> bytes:
    """The same JSON request however it is spaced or ordered hashes the same."""
    try:
        return msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:
        return body


def message_id_for(tenant: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x00{key}"))


async def replay_or_run(
    pool: asyncpg.Pool,
    request: Request[Any, Any, Any],
    tenant: str,
    run: Callable[[], Awaitable[Response[Any]]],
) -> Response[Any]:
    key = idempotency_key(request)
    if key is None:
        return await run()
    digest = hashlib.sha256(
        request.method.encode()
        + b" "
        + request.url.path.encode()
        + b"\n"
        + _canonical(await request.body())
    ).digest()
    replayed = await _reserve_or_replay(pool, tenant, key, digest)
    if replayed is not None:
        return replayed
    try:
        response = await run()
    except _REFUSED:
        await pool.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND status IS NULL",
            tenant,
            key,
        )
        raise
    await pool.execute(
        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE tenant_id = $1 AND key = $2",
        tenant,
        key,
        response.status_code,
        response.render(response.content, "application/json"),
    )
    return response


async def _reserve_or_replay(
    pool: asyncpg.Pool, tenant: str, key: str, digest: bytes
) -> Response[Any] | None:
    """None once this request holds the key (it runs the command); else the response stored
    by the request that held it, waited for while that one is still running."""
    deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
    while True:
        if await pool.fetchval(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            tenant,
            key,
            digest,
        ):
            return None
        stored = await pool.fetchrow(
            "SELECT request_hash, status, body FROM idempotency_keys"
            " WHERE tenant_id = $1 AND key = $2",
            tenant,
            key,
        )
        if stored is None:
            continue  # the holder was refused and freed the key: this request may take it
        if stored["request_hash"] != digest:
            raise InvalidValue("idempotency_key", "was already used for a different request")
        if stored["status"] is not None:
            return Response(
                content=bytes(stored["body"]),
                status_code=stored["status"],
                media_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        if time.monotonic() >= deadline:
            raise ConcurrencyError(
                "a request with this Idempotency-Key is still running, or ended without a"
                " response (its outcome is unknown): check before retrying with a new key"
            )
        await asyncio.sleep(0.02)
