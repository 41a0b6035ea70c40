"""The Idempotency-Key header on POST endpoints: a retried request gets the first response.

The first response is stored per (tenant, key) with a hash of the request; a retry with the
same key and the same request answers that response without running the command again; the
same key with another request is refused (422). For sending messages the key also decides the
message id, so even a retry after a crash between the command and storing its response queues
the message only once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response

from domain.errors import InvalidValue

HEADER = "Idempotency-Key"
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
    stored = await pool.fetchrow(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
        tenant,
        key,
    )
    if stored is not None:
        if stored["request_hash"] != digest:
            raise InvalidValue("idempotency_key", "was already used for a different request")
        return Response(
            content=bytes(stored["body"]),
            status_code=stored["status"],
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    response = await run()
    body = response.render(response.content, "application/json")
    await pool.execute(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status, body)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        tenant,
        key,
        digest,
        response.status_code,
        body,
    )
    return response
