"""Bearer API keys. The key decides the tenant; request bodies never do."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from adapters.http.permissions import act_on
from adapters.postgres.api_keys import Principal, find_principal
from application.errors import Unauthorized
from application.ports import EventStore

# Lookups of the first release's keys are cached briefly: such a key revoked in the database
# (by hand, `crm`) stops working within this time. A member's key is never cached: removing a
# member (over the API) must stop its keys at once, in every process; its lookup checks the
# revocation and the member's standing in the same query.
CACHE_SECONDS = 10.0
_CACHE_LIMIT = 10_000


class KeyCache:
    def __init__(self, pool: asyncpg.Pool, store: EventStore) -> None:
        self._pool = pool
        self._store = store
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, key: str) -> Principal | None:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit and hit[0] > now:
            return hit[1]
        found = await find_principal(self._pool, key, self._store)
        if found is not None and found.member_id is not None:
            return found
        if len(self._entries) >= _CACHE_LIMIT:
            self._entries.clear()
        # Not found is cached too: a member's key, once revoked, never comes back.
        self._entries[key] = (now + CACHE_SECONDS, found)
        return found


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = _authorization(connection.scope["headers"])
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        cache: KeyCache = connection.app.state.key_cache
        principal = await cache.principal(key.strip())
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        account = _header(connection.scope["headers"], b"x-account-id")
        principal = await act_on(principal, account or None, connection.app.state.container)
        return AuthenticationResult(user=principal, auth=key)


def _authorization(headers: list[tuple[bytes, bytes]]) -> str:
    """The Authorization header, read off the ASGI scope (names come lower-cased): building
    litestar's Headers for it cost more than the cached key lookup it leads to."""
    return _header(headers, b"authorization")


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> str:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return ""
