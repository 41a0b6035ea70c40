"""Reply suggestions retrieved by PostgreSQL full-text search (tables of migrations/053).

Why full-text search and not embeddings: it runs inside the database that already holds the
history (no model to download, host or keep in step with the data; a GIN index; one query per
request), its 'simple' configuration matches words as written in any language, and it is a
baseline whose quality can be measured before anything heavier is worth its cost. What it
misses is meaning without shared words ("u up?" and "are you awake"); that is where an
embedding model would earn its place.

Ranking: the past replies whose context (the fan message they answered) shares a word with the
fan's last message, grouped by their text (a reply used often is one candidate), each scored
by the sum over its uses of ts_rank(context, message) times the outcome's weight (a purchase
counts for more than a reply). With fewer than asked, the best of the rest by outcome and uses
complete the list (score 0): a fan's "🔥🔥" still gets the replies that work most.

Both read only the account's latest ``window`` replies that worked (an index walk, newest
first): searching all of them made a request's cost grow with the account's history (p95
1,262 ms at 20,000 fans). The latest few thousand are what the account writes now, and what
works now; a reply that has not worked in that long is not the one to suggest.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from application.reply_suggestions import Candidate, FanMessage
from domain.reply_suggestions import OUTCOME_WEIGHTS

_BIGINT = range(-(2**63), 2**63)

_FAN_MESSAGE = """
SELECT t.last_in_message_id::text AS message_id, t.last_in_content AS content, f.name, f.handle
FROM suggestion_threads t LEFT JOIN suggestion_fans f ON f.fan_id = t.fan_id
WHERE t.conversation_id = $1 AND t.tenant_id = $2 AND t.last_in_content IS NOT NULL
"""

# plainto_tsquery ANDs the message's words; any shared word should count, so its (quoted,
# escaped) text form is made an OR of the same lexemes. Lexemes never hold a space.
# MATERIALIZED: computed once. Inlined, the prepared (generic) plan recomputed it for every row
# it tested and ranked: 39 ms against 8 ms per request on the bench's 2,000 fans.
_WEIGHT = "CASE r.outcome WHEN 'purchased' THEN $3::float8 ELSE $4::float8 END"
# The window: the latest replies that worked (index suggestion_replies_recent, migration 057).
_RECENT = """
recent AS (
    SELECT message_id, template, outcome, queued_at, context_tsv
    FROM suggestion_replies
    WHERE tenant_id = $1 AND outcome IS NOT NULL
    ORDER BY queued_at DESC
    LIMIT $6
)"""
_MATCHING = f"""
WITH q AS MATERIALIZED (
    SELECT replace(plainto_tsquery('simple', $2)::text, ' & ', ' | ')::tsquery AS query
), {_RECENT}
SELECT (array_agg(r.message_id::text ORDER BY r.outcome = 'purchased' DESC, r.queued_at DESC))[1]
         AS message_id,
       (array_agg(r.template ORDER BY r.queued_at DESC))[1] AS template,
       bool_or(r.outcome = 'purchased') AS purchased,
       count(*) AS uses,
       sum(ts_rank(r.context_tsv, q.query) * {_WEIGHT}) AS score
FROM recent r, q
WHERE r.context_tsv @@ q.query
GROUP BY lower(btrim(r.template))
ORDER BY score DESC, uses DESC, 2
LIMIT $5
"""
_BEST = f"""
WITH {_RECENT}
SELECT (array_agg(r.message_id::text ORDER BY r.outcome = 'purchased' DESC, r.queued_at DESC))[1]
         AS message_id,
       (array_agg(r.template ORDER BY r.queued_at DESC))[1] AS template,
       bool_or(r.outcome = 'purchased') AS purchased,
       count(*) AS uses,
       sum({_WEIGHT}) AS weight
FROM recent r
WHERE NOT (lower(btrim(r.template)) = ANY($2))
GROUP BY lower(btrim(r.template))
ORDER BY weight DESC, uses DESC, 2
LIMIT $5
"""


# Past replies searched per request: an account's current repertoire (the bench's 2,000 fans
# left ~5,400 that worked; at 5,000 its hit rate fell from 54.5% to 54.0%), and cheap whatever
# the account's size.
WINDOW = 10_000


class PostgresSuggestionIndex:
    def __init__(self, pool: asyncpg.Pool, *, window: int = WINDOW) -> None:
        self._pool = pool
        self._window = window

    async def fan_message(self, tenant: str, conversation_id: int) -> FanMessage | None:
        if conversation_id not in _BIGINT:
            return None
        row = await self._pool.fetchrow(_FAN_MESSAGE, conversation_id, tenant)
        return FanMessage(**dict(row)) if row else None

    async def candidates(self, tenant: str, text: str, limit: int) -> list[Candidate]:
        weights = (OUTCOME_WEIGHTS["purchased"], OUTCOME_WEIGHTS["replied"])
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_MATCHING, tenant, text, *weights, limit, self._window)
            found = [_candidate(row, float(row["score"])) for row in rows]
            if len(found) < limit:
                seen = [c.template.strip().lower() for c in found]
                rest = await connection.fetch(
                    _BEST, tenant, seen, *weights, limit - len(found), self._window
                )
                found += [_candidate(row, 0.0) for row in rest]
        return found


def _candidate(row: Any, score: float) -> Candidate:
    return Candidate(
        message_id=row["message_id"],
        template=row["template"],
        outcome="purchased" if row["purchased"] else "replied",
        uses=row["uses"],
        score=round(score, 6),
    )
