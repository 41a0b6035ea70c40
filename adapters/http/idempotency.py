"""The Idempotency-Key header on POST endpoints: a retried request gets the first response.

The key is reserved per (tenant, key) with a hash of the request before the command runs, and
the first response stored with it after. A retry with the same key and the same request
answers that response (``Idempotent-Replayed: true``) without running the command again,
waiting a few seconds for a first request still running; the same key with another request
is refused (422). Without the header nothing here runs: no query is added to the request.

Whether a key is freed or kept after a failure is decided on a fact, not on the kind of
error: the command's own append marks the reservation committed in the statement that writes
its events (adapters/postgres/idempotency_keys.py). So a request that failed, with a 4xx or a
500, frees its key if nothing of it committed (a corrected retry may run), and keeps it if
something did: then the response was lost after the commit (a crash, an error while
answering) and a retry is answered 409 "outcome unknown" instead of running the command a
second time (a second campaign to every fan, a second fan); the client looks before it tries
anew with a fresh key. A first request that is still running is waited for; after the wait, a
key whose command has not committed is taken over by the retry (its holder may have died),
and the first request, if it ever gets to its append, appends nothing (409).

Keys expire after ``IDEMPOTENCY_TTL_SECONDS`` (24 h): an expired key may be used again, and
the relay worker deletes expired ones (worker/idempotency.py).

For sending messages the key also decides the message id, a second guard against a double
send. The CSV import (adapters/http/imports.py) is a stream of up to gigabytes that is never
held whole: its key decides its import job instead (``import_job_id_for``), see there.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from litestar import Request, Response

from adapters.postgres.idempotency_keys import (
    IdempotencyKeys,
    Reservation,
    StoredKey,
    holding,
)
from application.errors import ConcurrencyError
from domain.errors import InvalidValue

log = structlog.get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# How long a retry waits for the first request with its key to store a response.
WAIT_FOR_FIRST_SECONDS = 5.0
_POLL_SECONDS = 0.02
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


def request_digest(method: str, path: str, body: bytes) -> bytes:
    """What "the same request" means: the same method, path and JSON body."""
    return hashlib.sha256(
        method.encode() + b" " + path.encode() + b"\n" + _canonical(body)
    ).digest()


def message_id_for(tenant: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x00{key}"))


def import_job_id_for(tenant: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x00import\x00{key}"))


async def replay_or_run(
    keys: IdempotencyKeys,
    request: Request[Any, Any, Any],
    tenant: str,
    run: Callable[[], Awaitable[Response[Any]]],
) -> Response[Any]:
    key = idempotency_key(request)
    if key is None:
        return await run()
    digest = request_digest(request.method, request.url.path, await request.body())
    held = await _reserve_or_replay(keys, tenant, key, digest)
    if isinstance(held, Response):
        return held
    with holding(held):
        try:
            response = await run()
        except BaseException:
            await _release_quietly(keys, held)
            raise
    # A Response without a status takes its route's.
    status = response.status_code or request.route_handler.status_code or 200
    # A refusal answered rather than raised (a problem response) frees the key the same way;
    # if something committed before it, it is the outcome, and retries get it.
    if status >= 400 and await keys.release(held):
        return response
    media_type = str(response.media_type or "application/json")
    await keys.complete(
        held,
        status,
        response.render(response.content, media_type),
        {**{k: str(v) for k, v in response.headers.items()}, "content-type": media_type},
    )
    return response


async def _release_quietly(keys: IdempotencyKeys, held: Reservation) -> None:
    """Free the key after a failure, keeping that failure the one reported. Shielded: a
    cancelled request (the client went away) still frees it. If even this fails, the key
    stays reserved uncommitted, and a retry takes it over after its wait."""
    try:
        await asyncio.shield(keys.release(held))
    except Exception:
        log.warning("idempotency key not released", tenant=held.tenant, exc_info=True)


async def _reserve_or_replay(
    keys: IdempotencyKeys, tenant: str, key: str, digest: bytes
) -> Reservation | Response[Any]:
    """The key, held by this request (it runs the command); else the response stored by the
    request that held it, waited for while that one is still running."""
    deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
    while True:
        reservation = await keys.reserve(tenant, key, digest)
        if reservation is not None:
            return reservation
        stored = await keys.stored(tenant, key)
        if stored is None:
            continue  # the holder failed and freed the key: this request may take it
        if stored.request_hash != digest:
            raise InvalidValue("idempotency_key", "was already used for a different request")
        if stored.status is not None:
            return _replay(stored)
        if time.monotonic() >= deadline:
            if stored.committed:
                raise ConcurrencyError(
                    "a request with this Idempotency-Key ended without a response after its"
                    " command committed (its outcome is unknown): check before retrying with"
                    " a new key"
                )
            taken = await keys.take_over(stored, tenant, key)
            if taken is not None:
                return taken
            continue
        await asyncio.sleep(_POLL_SECONDS)


def _replay(stored: StoredKey) -> Response[Any]:
    headers = dict(stored.headers)
    media_type = headers.pop("content-type", "application/json")
    return Response(
        content=stored.body or b"",
        status_code=stored.status or 200,
        media_type=media_type,
        headers={**headers, REPLAYED: "true"},
    )
