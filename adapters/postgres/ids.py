"""Integer ids of the HTTP contract, from Postgres sequences (gaps are fine, repeats are not)."""

from __future__ import annotations

import asyncpg

_SEQUENCES = {"fan": "fan_id_seq", "conversation": "conversation_id_seq"}


class SequenceIds:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def next_id(self, kind: str) -> int:
        return int(await self._pool.fetchval("SELECT nextval($1::regclass)", _SEQUENCES[kind]))
