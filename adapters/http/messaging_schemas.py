"""Bodies of the messaging endpoints (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from adapters.http.schemas import Body
from application.message_queries import ConversationView, MessageView


class Attachment(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    url: str


class SendMessageBody(Body):
    # The reference sends ids as strings ("123"); integers are accepted too.
    recipient_id: int | str
    content: str
    media_urls: list[str] = []
    attachments: list[Attachment] = []
    price_cents: int = 0
    priority: int = 5
    message_id: str | None = None


class SendBatchBody(Body):
    messages: list[SendMessageBody]


class MessageAcceptedOut(msgspec.Struct, kw_only=True, rename="camel"):
    message_id: str
    status: str
    queued_at: datetime
    # None when the queues could not be counted after the message was queued.
    estimated_send_time: datetime | None
    conversation_id: int
    position: int


class BatchItemOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    message_id: str | None
    status: str
    queued_at: datetime | None = None
    error: str | None = None
    field: str | None = None


class BatchOut(msgspec.Struct, kw_only=True, rename="camel"):
    results: list[BatchItemOut]
    queued: int
    failed: int


class QueueStatusOut(msgspec.Struct, kw_only=True, rename="camel"):
    queue_depth: int
    messages_in_flight: int
    dlq_count: int
    last_processed_at: datetime | None
    queues: dict[str, dict[str, int]]
    # "global" (every account, per queue) or "tenant" (the caller's own messages).
    scope: str = "global"


class RetriedOut(msgspec.Struct, kw_only=True, rename="camel"):
    message_id: str
    status: str
    position: int


class ConversationOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    user_id: str
    fan_id: int
    platform: str
    created_at: datetime
    last_message_at: datetime | None
    message_count: int

    @classmethod
    def from_view(cls, view: ConversationView) -> ConversationOut:
        return cls(
            id=view.conversation_id,
            user_id=view.tenant,
            fan_id=view.fan_id,
            platform=view.platform,
            created_at=view.created_at,
            last_message_at=view.last_message_at,
            message_count=view.message_count,
        )


class AttemptOut(msgspec.Struct, kw_only=True):
    """One try at the platform: ``sent``, ``retrying`` (an error, tried again later) or
    ``failed`` (a refusal, or the last try's error)."""

    at: datetime
    outcome: str
    reason: str | None


class MessageOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: str
    user_id: str
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
    failed_at: datetime | None  # the last failure
    purchased_at: datetime | None
    revenue_cents: int
    # Each try at the platform, oldest first (``attempts`` counts them).
    attempt_history: list[AttemptOut]
    first_failed_at: datetime | None = None

    @classmethod
    def from_view(cls, view: MessageView) -> MessageOut:
        fields = msgspec.structs.asdict(view)
        fields["id"] = fields.pop("message_id")
        fields["user_id"] = fields.pop("tenant")
        # Stored as JSON: the times come back as text.
        fields["attempt_history"] = msgspec.convert(
            view.attempt_history, list[AttemptOut], strict=False
        )
        return cls(**fields)


class CreateConversationBody(Body):
    fan_id: int
    platform: str = "onlyfans"


class ConversationCreatedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """The fan's conversation id; ``position`` is set when this request opened it (read the
    conversation with ``minPosition`` to see it)."""

    id: int
    fan_id: int
    position: int | None


class ConversationListOut(msgspec.Struct, kw_only=True, rename="camel"):
    conversations: list[ConversationOut]
    next_cursor: str | None


class MessageListOut(msgspec.Struct, kw_only=True, rename="camel"):
    messages: list[MessageOut]
    next_cursor: str | None
