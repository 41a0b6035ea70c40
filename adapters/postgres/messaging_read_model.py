"""Hand-written SQL over the conversations and messages read tables; keyset pagination."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.message_queries import (
    UNASSIGNED,
    ConversationView,
    MessageFilter,
    MessageView,
    Page,
    UnassignedType,
)

_CONVERSATION = """
SELECT conversation_id, tenant_id AS tenant, fan_id, platform, created_at, last_message_at,
       message_count, assigned_to, unread_count, activity_at
FROM conversations
"""

_MESSAGE = """
SELECT message_id::text, tenant_id AS tenant, conversation_id, fan_id, direction, content,
       price_cents, attachments, priority, status, failure_reason, campaign_id, attempts,
       queued_at, dispatched_at, sent_at, read_at, failed_at, first_failed_at, purchased_at,
       revenue_cents, attempt_history, platform
FROM messages
"""

# Conversation ids are bigint: anything outside this range names no row, and asyncpg refuses
# to send it at all.
_BIGINT = range(-(2**63), 2**63)


class PostgresMessagingReadModel:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_conversations(
        self,
        tenant: str,
        limit: int,
        cursor: str | None,
        assigned_to: str | UnassignedType | None = None,
    ) -> Page:
        """Newest activity first; with ``assigned_to``, one member's (or, ``UNASSIGNED``, no
        member's), along an index whose prefix that filter is (migration 038)."""
        args: list[Any] = [tenant]
        conditions = ["tenant_id = $1"]
        if assigned_to is UNASSIGNED:
            conditions.append("assigned_to IS NULL")
        elif assigned_to is not None:
            args.append(assigned_to)
            conditions.append(f"assigned_to = ${len(args)}")
        if cursor:
            args.extend(_decode_cursor(cursor, int))
            conditions.append(f"(activity_at, conversation_id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        rows = await self._pool.fetch(
            _CONVERSATION
            + "WHERE "
            + " AND ".join(conditions)
            + f" ORDER BY activity_at DESC, conversation_id DESC LIMIT ${len(args)}",
            *args,
        )
        items = [_conversation(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor(last["activity_at"], last["conversation_id"])
        return Page(items, next_cursor)

    async def get_conversation(self, tenant: str, conversation_id: int) -> ConversationView | None:
        if conversation_id not in _BIGINT:
            return None
        row = await self._pool.fetchrow(
            _CONVERSATION + "WHERE conversation_id = $1 AND tenant_id = $2",
            conversation_id,
            tenant,
        )
        return _conversation(row) if row else None

    async def list_messages(
        self, tenant: str, conversation_id: int, limit: int, cursor: str | None
    ) -> Page:
        """Newest first, like a chat scrolled back."""
        if conversation_id not in _BIGINT:
            return Page([], None)
        if cursor:
            at, last_id = _decode_cursor(cursor, uuid.UUID)
            rows = await self._pool.fetch(
                _MESSAGE + "WHERE conversation_id = $1 AND tenant_id = $2"
                " AND (queued_at, message_id) < ($3, $4)"
                " ORDER BY queued_at DESC, message_id DESC LIMIT $5",
                conversation_id,
                tenant,
                at,
                last_id,
                limit + 1,
            )
        else:
            rows = await self._pool.fetch(
                _MESSAGE + "WHERE conversation_id = $1 AND tenant_id = $2"
                " ORDER BY queued_at DESC, message_id DESC LIMIT $3",
                conversation_id,
                tenant,
                limit + 1,
            )
        return _message_page(rows, limit)

    async def get_message(self, tenant: str, message_id: str) -> MessageView | None:
        try:
            key = uuid.UUID(message_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow(
            _MESSAGE + "WHERE message_id = $1 AND tenant_id = $2", key, tenant
        )
        return MessageView(**dict(row)) if row else None

    async def search_messages(
        self, tenant: str, where: MessageFilter, limit: int, cursor: str | None
    ) -> Page:
        """The tenant's messages, newest queued first, narrowed by ``where``. Each filter is a
        prefix of an index of migrations/027 (or 007's by conversation), ordered the same way,
        so a page reads ``limit`` rows whichever filter is given."""
        for value in (where.conversation_id, where.campaign_id):
            if value is not None and value not in _BIGINT:
                return Page([], None)
        # Only the filters given reach the statement: a condition "$n IS NULL OR ..." would let
        # a generic plan (asyncpg prepares statements) pick one index for every combination.
        args: list[Any] = [tenant]
        conditions = ["tenant_id = $1"]
        for condition, value in (
            ("status = ${}", where.status),
            ("conversation_id = ${}", where.conversation_id),
            ("campaign_id = ${}", where.campaign_id),
            ("queued_at >= ${}", where.since),
            ("queued_at < ${}", where.until),
        ):
            if value is not None:
                args.append(value)
                conditions.append(condition.format(len(args)))
        if cursor:
            args.extend(_decode_cursor(cursor, uuid.UUID))
            conditions.append(f"(queued_at, message_id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        rows = await self._pool.fetch(
            _MESSAGE + "WHERE " + " AND ".join(conditions) + " ORDER BY queued_at DESC,"
            f" message_id DESC LIMIT ${len(args)}",
            *args,
        )
        return _message_page(rows, limit)


def _message_page(rows: list[Any], limit: int) -> Page:
    """Rows fetched newest first, one past ``limit``: the page, and the cursor after it if
    that extra row says there is more."""
    items = [MessageView(**dict(row)) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.queued_at, last.message_id)
    return Page(items, next_cursor)


def _decode_cursor(cursor: str, id_type: Any) -> tuple[datetime, Any]:
    at, last_id = decode_cursor(cursor, tuple[datetime, id_type])
    return at, last_id


def _conversation(row: asyncpg.Record) -> ConversationView:
    fields = dict(row)
    fields.pop("activity_at")
    return ConversationView(**fields)
