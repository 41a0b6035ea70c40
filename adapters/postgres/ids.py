"""Integer ids of the HTTP contract, from Postgres sequences (gaps are fine, repeats are not)."""

from __future__ import annotations

import asyncpg

_SEQUENCES = {
    "fan": "fan_id_seq",
    "conversation": "conversation_id_seq",
    "campaign": "campaign_id_seq",
    "script": "script_id_seq",
    "sequence": "sequence_id_seq",
    "person": "person_id_seq",
}


class SequenceIds:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def next_id(self, kind: str) -> int:
        return int(await self._pool.fetchval("SELECT nextval($1::regclass)", _SEQUENCES[kind]))

    async def next_ids(self, kind: str, count: int) -> list[int]:
        rows = await self._pool.fetch(
            "SELECT nextval($1::regclass) FROM generate_series(1, $2)", _SEQUENCES[kind], count
        )
        return [int(row[0]) for row in rows]
