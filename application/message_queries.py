"""Queries on the conversations and messages read models, and the port that answers them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal, Protocol

import msgspec


class ConversationView(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: int
    tenant: str
    fan_id: int
    platform: str
    created_at: datetime
    last_message_at: datetime | None
    message_count: int
    assigned_to: str | None = None  # a member of the workspace
    unread_count: int = 0  # the fan's messages since the account's last one


class UnassignedType(Enum):
    """Conversations assigned to no member (a filter value no member id can be)."""

    UNASSIGNED = "unassigned"


UNASSIGNED: Literal[UnassignedType.UNASSIGNED] = UnassignedType.UNASSIGNED


class MessageView(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    tenant: str
    conversation_id: int
    fan_id: int
    direction: str
    content: str | None
    price_cents: int
    attachments: list[dict[str, Any]]
    priority: int
    status: str
    failure_reason: str | None
    campaign_id: int | None
    attempts: int
    queued_at: datetime
    dispatched_at: datetime | None
    sent_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    first_failed_at: datetime | None = None  # failed_at is the last failure
    # A PPV message the fan paid for: when, and how much.
    purchased_at: datetime | None = None
    revenue_cents: int = 0
    # Its tries at the platform, oldest first: {at, outcome (sent, retrying, failed), reason}.
    attempt_history: list[dict[str, Any]] = []
    # The platform that carried it (domain.message.Message.Queued.platform).
    platform: str = "onlyfans"


class MessageFilter(msgspec.Struct, frozen=True, kw_only=True):
    """GET /api/crm/messages: every field that is not None narrows the list. ``since`` is
    inclusive and ``until`` exclusive, both on ``queued_at``."""

    status: str | None = None
    conversation_id: int | None = None
    campaign_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class Page(msgspec.Struct, frozen=True):
    items: list[Any]
    next_cursor: str | None


class MessagingReadModel(Protocol):
    async def list_conversations(
        self,
        tenant: str,
        limit: int,
        cursor: str | None,
        assigned_to: str | UnassignedType | None = None,
    ) -> Page:
        """``assigned_to``: one member's conversations, or UNASSIGNED; None: every one."""
        ...

    async def get_conversation(
        self, tenant: str, conversation_id: int
    ) -> ConversationView | None: ...

    async def list_messages(
        self, tenant: str, conversation_id: int, limit: int, cursor: str | None
    ) -> Page: ...

    async def get_message(self, tenant: str, message_id: str) -> MessageView | None: ...

    async def search_messages(
        self, tenant: str, where: MessageFilter, limit: int, cursor: str | None
    ) -> Page: ...
