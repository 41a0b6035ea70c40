"""Log events as the updates a live client receives: JSON objects with camelCase names.

Every update built from an event carries that event's ``position``; a client that keeps the
last one it saw resumes after it (``?after=``, ``Last-Event-ID``). The shapes are listed in
README.md, "Live updates". Personal fields come from the decoded event: an erased fan's read
back as None, so its updates carry none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from application.ports import RecordedEvent
from domain.campaign import Campaign
from domain.enrolment import Enrolment
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of

Update = dict[str, Any]

# The status a message is in after each of its events (AttemptFailed changes nothing a UI
# shows: the message stays dispatched until the retry's outcome; Clicked is a metric).
MESSAGE_STATUS: dict[type, str] = {
    Message.Queued: "queued",
    Message.Requeued: "queued",
    Message.Released: "queued",
    Message.Dispatched: "dispatched",
    Message.Sent: "sent",
    Message.Delivered: "delivered",
    Message.Read: "read",
    Message.Failed: "failed",
    Message.Purchased: "purchased",
    Message.Held: "held",
    Message.Cancelled: "cancelled",
}

UPDATE_TYPES = (
    "message.received",
    "message.updated",
    "conversation.updated",
    "campaign.progress",
    "fan.updated",
    "fan.erased",
    "sequence.progress",
    "queue.status",
)


class MessageFacts(msgspec.Struct, frozen=True):
    """What a message's later events do not repeat: taken from its Queued event."""

    conversation_id: int
    fan_id: int
    campaign_id: int | None
    price_cents: int


def facts_of(queued: Message.Queued) -> MessageFacts:
    return MessageFacts(
        queued.conversation_id, queued.fan_id, queued.campaign_id, queued.price_cents
    )


def _at(when: datetime) -> str:
    return when.isoformat()


def message_update(recorded: RecordedEvent, facts: MessageFacts | None) -> Update | None:
    """``message.updated`` for an outgoing message's event; None for events a UI ignores, or
    a message whose Queued event is not found (never the case in a consistent log)."""
    event = recorded.event
    status = MESSAGE_STATUS.get(type(event))
    if status is None or facts is None:
        return None
    update: Update = {
        "type": "message.updated",
        "position": recorded.position,
        "messageId": message_id_of(recorded.stream_id),
        "conversationId": facts.conversation_id,
        "fanId": facts.fan_id,
        "campaignId": facts.campaign_id,
        "status": status,
        "priceCents": facts.price_cents,
        "at": _at(recorded.recorded_at),
    }
    if isinstance(event, Message.Queued):
        update["direction"] = "outgoing"
        update["content"] = event.content  # None once the fan is erased
    elif isinstance(event, Message.Purchased):
        update["revenueCents"] = event.amount_cents
    elif isinstance(event, Message.Failed | Message.Held | Message.Cancelled):
        update["reason"] = event.reason
    return update


def received_update(recorded: RecordedEvent) -> Update:
    event = recorded.event
    assert isinstance(event, InboundMessage.Received)
    return {
        "type": "message.received",
        "position": recorded.position,
        "messageId": event.message_id,
        "conversationId": event.conversation_id,
        "fanId": event.fan_id,
        "campaignId": None,
        "direction": "incoming",
        "content": event.content,  # None once the fan is erased
        "at": _at(recorded.recorded_at),
    }


def fan_update(recorded: RecordedEvent) -> Update | None:
    """``fan.updated`` (personal fields None once erased), or ``fan.erased``."""
    event = recorded.event
    fan_id = int(recorded.stream_id.removeprefix("fan-"))
    base: Update = {"position": recorded.position, "fanId": fan_id, "at": _at(recorded.recorded_at)}
    if isinstance(event, Fan.Erased):
        return {"type": "fan.erased", **base}
    if isinstance(event, Fan.Created | Fan.Updated):
        return {
            "type": "fan.updated",
            **base,
            "change": "created" if isinstance(event, Fan.Created) else "updated",
            "name": event.name,
            "handle": event.handle,
            "valueCents": event.value_cents,
            "tags": list(event.tags),
        }
    if isinstance(event, Fan.Deleted):
        return {"type": "fan.updated", **base, "change": "deleted"}
    if isinstance(event, Fan.PurchaseRecorded):
        return {
            "type": "fan.updated",
            **base,
            "change": "purchase",
            "amountCents": event.amount_cents,
            "messageId": event.message_id,
        }
    return None


def campaign_id_of_event(recorded: RecordedEvent, facts: MessageFacts | None) -> int | None:
    """The campaign an event moves: its own stream's, or a campaign message's."""
    if isinstance(recorded.event, Campaign.Event):
        return int(recorded.stream_id.removeprefix("campaign-"))
    return facts.campaign_id if facts is not None else None


def conversation_update(
    recorded: RecordedEvent, conversation_id: int, fan_id: int, unread: int
) -> Update:
    return {
        "type": "conversation.updated",
        "position": recorded.position,
        "conversationId": conversation_id,
        "fanId": fan_id,
        "lastMessageAt": _at(recorded.recorded_at),
        "unreadCount": unread,
    }


def sequence_update(recorded: RecordedEvent) -> Update | None:
    """``sequence.progress`` for a fan's run through a sequence: entered, a step sent, exited
    (and why) or completed. The run's stream names its sequence, fan and entry."""
    event = recorded.event
    _, sequence_id, fan_id, entry = recorded.stream_id.split("-")
    update: Update = {
        "type": "sequence.progress",
        "position": recorded.position,
        "sequenceId": int(sequence_id),
        "fanId": int(fan_id),
        "entry": int(entry),
        "at": _at(recorded.recorded_at),
    }
    if isinstance(event, Enrolment.Enrolled):
        return {
            **update,
            "change": "enrolled",
            "trigger": event.trigger,
            "nextDueAt": _at(event.due_at),
        }
    if isinstance(event, Enrolment.StepSent):
        next_due = None if event.next_due is None else _at(event.next_due)
        return {
            **update,
            "change": "stepSent",
            "step": event.step,
            "messageId": event.message_id,
            "nextDueAt": next_due,
        }
    if isinstance(event, Enrolment.Exited):
        return {**update, "change": "exited", "reason": event.reason}
    if isinstance(event, Enrolment.Completed):
        return {**update, "change": "completed"}
    return None
