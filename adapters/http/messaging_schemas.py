"""Bodies of the messaging endpoints (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType
from msgspec import UNSET, UnsetType

from adapters.http.openapi import NOT_BLANK, rule, schema
from adapters.http.schemas import NO_NUL, Body, Platform
from application.message_queries import ConversationView, MessageView
from application.messages import MAX_BATCH
from domain import message as rules

# The domain's rules on a message (domain/message.py), as the OpenAPI schema states them.
# A URL's host: DNS labels (an IP literal, or a name with other characters, may pass the
# domain's check too: the schema says less than it accepts, never more).
_URL = r"^https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?([/?#][^\s\u0000-\u001f\u007f]*)?$"
MediaUrl = Annotated[
    str, rule("An https:// URL naming a host", max_length=rules.MAX_URL, pattern=_URL)
]
_MEDIA = f"At most {rules.MAX_ATTACHMENTS} with attachments and mediaUrls together"
MediaUrls = Annotated[
    list[MediaUrl],
    rule(
        _MEDIA,
        max_items=rules.MAX_ATTACHMENTS,
        items=schema(type=OpenAPIType.STRING, max_length=rules.MAX_URL, pattern=_URL),
    ),
]
Content = Annotated[
    str,
    rule(
        "Not blank, no NUL characters",
        max_length=rules.MAX_CONTENT,
        pattern=rf"^[^\u0000]*{NOT_BLANK}[^\u0000]*$",
    ),
]
PriceCents = Annotated[
    int,
    rule(
        f"0 (free) or a PPV price from {rules.MIN_PRICE_CENTS} to {rules.MAX_PRICE_CENTS} cents",
        any_of=[
            schema(const=0),
            schema(minimum=rules.MIN_PRICE_CENTS, maximum=rules.MAX_PRICE_CENTS),
        ],
    ),
]
AUTO_PRICE = (
    '"auto": the pricing model (GET /api/analytics/pricing) picks a grid price for the'
    " recipient when the message is queued; the price is recorded on the message, so a"
    " retry or a repeat of its id sends that price"
)
PriceOrAuto = Annotated[
    int | Literal["auto"],
    rule(
        f"0 (free), a PPV price from {rules.MIN_PRICE_CENTS} to {rules.MAX_PRICE_CENTS}"
        f" cents, or {AUTO_PRICE}",
        one_of=[
            schema(
                type=OpenAPIType.INTEGER,
                any_of=[
                    schema(const=0),
                    schema(minimum=rules.MIN_PRICE_CENTS, maximum=rules.MAX_PRICE_CENTS),
                ],
            ),
            schema(type=OpenAPIType.STRING, enum=["auto"]),
        ],
    ),
]
Priority = Annotated[
    int, rule("1-10; 8 and above take the high-priority queue", minimum=1, maximum=10)
]
FanId = Annotated[int, rule("A fan of this account", minimum=1, maximum=2**63 - 1)]
FanIdText = Annotated[str, rule("A fan of this account", pattern=r"^[0-9]{1,18}$")]
ScriptId = Annotated[
    int,
    rule(
        "A saved reply of this account (/api/crm/scripts): content, price and media that"
        " the message leaves out come from it, its content rendered for the recipient",
        minimum=1,
        maximum=2**63 - 1,
    ),
]
MessageId = Annotated[
    str, rule("A UUID, in this account's own namespace: the idempotency key", format="uuid")
]


class Attachment(msgspec.Struct, forbid_unknown_fields=True):
    type: Annotated[str, rule("The media's kind", enum=sorted(rules.ATTACHMENT_TYPES))]
    url: MediaUrl


class SendMessageBody(Body):
    """A message: its ``content``, or a ``scriptId`` whose content is rendered for it."""

    openapi_rules: ClassVar[dict[str, Any]] = {
        "any_of": [
            {"required": ["content"], "properties": {"content": {"type": "string"}}},
            {"required": ["scriptId"], "properties": {"scriptId": {"type": "integer"}}},
        ]
    }

    # The reference sends ids as strings ("123"); integers are accepted too.
    recipient_id: Annotated[
        int | str,
        rule(
            "A fan of this account: its id, as a number or in digits",
            one_of=[
                schema(type=OpenAPIType.INTEGER, minimum=1, maximum=2**63 - 1),
                schema(type=OpenAPIType.STRING, pattern=r"^[0-9]{1,18}$"),
            ],
        ),
    ]
    # Required unless scriptId is given; then content, price and media that are absent
    # come from the script, its content rendered for the recipient.
    content: Content | UnsetType = UNSET
    media_urls: MediaUrls = []
    attachments: Annotated[list[Attachment], rule(_MEDIA, max_items=rules.MAX_ATTACHMENTS)] = []
    price_cents: PriceOrAuto | UnsetType = UNSET
    priority: Priority = 5
    message_id: MessageId | None = None
    script_id: ScriptId | UnsetType = UNSET


class SendBatchBody(Body):
    messages: Annotated[
        list[SendMessageBody], rule(f"At most {MAX_BATCH} messages", max_items=MAX_BATCH)
    ]


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
    # The member of the workspace it is assigned to; null: nobody.
    assigned_to: str | None
    # The fan's messages since the account's last one (a message to the fan answers them).
    unread_count: int

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
            assigned_to=view.assigned_to,
            unread_count=view.unread_count,
        )


class AssigneeBody(Body):
    # null: unassign.
    member_id: (
        Annotated[
            str,
            rule("A member of the workspace", min_length=1, max_length=200, pattern=NO_NUL),
        ]
        | None
    )


class AssignedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """The conversation as GET answers it, and the position of its last event."""

    conversation: ConversationOut
    position: int


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
    # The platform that carried it: its fan's when it was queued (onlyfans, fansly).
    platform: str = "onlyfans"

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
    fan_id: FanId
    # Optional: the fan's own platform is taken. Given, it must be the fan's (a check the
    # caller asked for); a default here once refused every fan not on OnlyFans.
    platform: Annotated[Platform, rule("The fan's own platform, if given")] | None = None


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
