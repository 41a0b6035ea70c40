"""Hand-written SQL over the people read model, joined to the fans and conversations ones.

A person's fans are read through the fans table, which holds live fans only: an erased fan's
name and handle are gone from there, so no person's view can show them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg

from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.people_queries import (
    MatchedBy,
    PeoplePage,
    PersonConversationView,
    PersonFanView,
    PersonView,
    Suggestion,
)

_BIGINT = range(-(2**63), 2**63)

_FANS = """
SELECT pf.person_id, f.fan_id, f.platform, f.name, f.handle, f.value_cents
FROM person_fans AS pf JOIN fans AS f ON f.fan_id = pf.fan_id AND f.tenant_id = pf.tenant_id
WHERE pf.person_id = ANY($1::bigint[]) AND pf.tenant_id = $2
ORDER BY pf.person_id, pf.linked_at, f.fan_id
"""

_CONVERSATIONS = """
SELECT pf.person_id, c.conversation_id, c.fan_id, c.platform, c.last_message_at, c.unread_count
FROM person_fans AS pf
JOIN fans AS f ON f.fan_id = pf.fan_id AND f.tenant_id = pf.tenant_id
JOIN conversations AS c ON c.fan_id = pf.fan_id AND c.tenant_id = pf.tenant_id
WHERE pf.person_id = ANY($1::bigint[]) AND pf.tenant_id = $2
ORDER BY pf.person_id, c.activity_at DESC, c.conversation_id DESC
"""

# Live fans of the account that no person holds, keyed as the import compares handles
# (domain.fan.handle_key: trimmed, no leading '@', any case) and emails without case; a key
# shared by fans on two platforms or more is a suggestion. Hashed, not sorted: nothing here
# asks Postgres to sort the account's fans (a group's ids are sorted in Python): sorting them
# was the most of the query's time (bench/MEASUREMENTS.md, "People suggestions").
_SUGGESTIONS = """
SELECT matched_by, fan_ids FROM (
    SELECT 'handle' AS matched_by, array_agg(f.fan_id) AS fan_ids, min(f.fan_id) AS first
    FROM fans AS f
    WHERE f.tenant_id = $1 AND f.handle IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM person_fans AS pf WHERE pf.fan_id = f.fan_id)
    GROUP BY lower(ltrim(btrim(f.handle), '@'))
    HAVING min(f.platform) <> max(f.platform)  -- two platforms or more, without a sort
    UNION ALL
    SELECT 'email', array_agg(f.fan_id), min(f.fan_id)
    FROM fans AS f
    WHERE f.tenant_id = $1 AND f.email IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM person_fans AS pf WHERE pf.fan_id = f.fan_id)
    GROUP BY lower(btrim(f.email))
    HAVING min(f.platform) <> max(f.platform)  -- two platforms or more, without a sort
) AS groups
ORDER BY first, matched_by DESC
LIMIT $2
"""

_FANS_BY_ID = """
SELECT fan_id, platform, name, handle, value_cents FROM fans
WHERE fan_id = ANY($1::bigint[]) AND tenant_id = $2
"""


class PostgresPeopleReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_person(self, tenant: str, person_id: int) -> PersonView | None:
        if person_id not in _BIGINT:
            return None
        rows = await self._pool.fetch(
            "SELECT person_id, created_at, version FROM people"
            " WHERE person_id = $1 AND tenant_id = $2",
            person_id,
            tenant,
        )
        people = await self._views(tenant, rows)
        return people[0] if people else None

    async def list_people(self, tenant: str, limit: int, cursor: str | None) -> PeoplePage:
        args: list[Any] = [tenant, limit + 1]
        after = ""
        if cursor:
            (last_id,) = decode_cursor(cursor, tuple[int])
            args.append(last_id)
            after = "AND person_id < $3::bigint"
        rows = await self._pool.fetch(
            "SELECT person_id, created_at, version FROM people"
            f" WHERE tenant_id = $1 {after} ORDER BY person_id DESC LIMIT $2",
            *args,
        )
        people = await self._views(tenant, rows[:limit])
        next_cursor = encode_cursor(people[-1].person_id) if len(rows) > limit else None
        return PeoplePage(people, next_cursor)

    async def suggestions(self, tenant: str, limit: int) -> list[Suggestion]:
        async with (
            self._pool.acquire() as connection,
            connection.transaction(readonly=True, isolation="repeatable_read"),
        ):
            # One snapshot: the groups and the fans they name agree.
            groups = await connection.fetch(_SUGGESTIONS, tenant, limit * 2)
            ids = {fan_id for group in groups for fan_id in group["fan_ids"]}
            fans = {
                row["fan_id"]: _fan(row)
                for row in await connection.fetch(_FANS_BY_ID, list(ids), tenant)
            }
        # A handle and an email may name the same fans: one suggestion, matched by both.
        merged: dict[tuple[int, ...], list[MatchedBy]] = {}
        for group in groups:
            merged.setdefault(tuple(sorted(group["fan_ids"])), []).append(group["matched_by"])
        return [
            Suggestion(matched_by=tuple(sorted(by, reverse=True)), fans=[fans[i] for i in members])
            for members, by in list(merged.items())[:limit]
        ]

    async def _views(self, tenant: str, rows: list[asyncpg.Record]) -> list[PersonView]:
        if not rows:
            return []
        ids = [row["person_id"] for row in rows]
        fans: dict[int, list[PersonFanView]] = defaultdict(list)
        conversations: dict[int, list[PersonConversationView]] = defaultdict(list)
        async with (
            self._pool.acquire() as connection,
            connection.transaction(readonly=True, isolation="repeatable_read"),
        ):
            # One snapshot: a fan's conversation is listed only beside the fan.
            for row in await connection.fetch(_FANS, ids, tenant):
                fans[row["person_id"]].append(_fan(row))
            for row in await connection.fetch(_CONVERSATIONS, ids, tenant):
                conversations[row["person_id"]].append(
                    PersonConversationView(
                        conversation_id=row["conversation_id"],
                        fan_id=row["fan_id"],
                        platform=row["platform"],
                        last_message_at=row["last_message_at"],
                        unread_count=row["unread_count"],
                    )
                )
        return [
            PersonView(
                person_id=row["person_id"],
                fans=fans[row["person_id"]],
                conversations=conversations[row["person_id"]],
                created_at=row["created_at"],
                version=row["version"],
            )
            for row in rows
        ]


def _fan(row: asyncpg.Record) -> PersonFanView:
    return PersonFanView(
        fan_id=row["fan_id"],
        platform=row["platform"],
        name=row["name"],
        handle=row["handle"],
        value_cents=row["value_cents"],
    )
