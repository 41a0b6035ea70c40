"""A per-tenant keyed pseudonym for a fan: stable across exports, so an analyst can join rows
of one fan, but not reversible (nor linkable to fancrm's fan ids) without the master key.

The key lives in ``subject_keys`` under a reserved subject, wrapped by the master key like the
import index key (adapters/postgres/imports_index.py), so `crm keys rotate` re-wraps it and
the pseudonyms do not change when the master key does."""

from __future__ import annotations

import hashlib
import hmac

import asyncpg

from adapters.crypto import MasterKey
from adapters.postgres.imports_index import load_index_key

SUBJECT = "export-pseudonym"


class FanPseudonyms:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._known: dict[tuple[str, int], str] = {}

    def of(self, tenant: str, fan_id: int) -> str:
        found = self._known.get((tenant, fan_id))
        if found is None:
            digest = hmac.new(self._key, f"{tenant}\x00{fan_id}".encode(), hashlib.sha256)
            found = self._known[(tenant, fan_id)] = digest.hexdigest()[:32]
        return found


async def load_pseudonyms(pool: asyncpg.Pool, masters: list[MasterKey]) -> FanPseudonyms:
    return FanPseudonyms(await load_index_key(pool, masters, subject=SUBJECT))
