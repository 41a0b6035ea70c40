"""What the sender decides about one queued message, as pure functions: no I/O, no clock.

A queue record carries a message to send. Before the platform is called the sender asks: is the
message settled already (a redelivery, a relay's re-send)? is it past its last counted receive?
is its campaign paused or cancelled? After the call it asks what the platform's answer means:
recorded sent, failed for good, or a failed try to redeliver later (and when). A timeout on the
last receive is ambiguous: the message may have gone out, so it is asked again, with the same
Idempotency-Key, before it is called failed. The service carrying these out is
application/delivery_service.py; the worker only turns queue records into ``SendJob``s and
``Disposition``s into queue calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from application.sending import PlatformSendResult

# Nothing more to send: sent or read already (a redelivery, a relay's re-send); held (its
# campaign is paused, and the campaign worker will release it with a record of its own); or
# cancelled, never to be sent.
SETTLED = frozenset({"sent", "read", "held", "cancelled"})


class SendJob(msgspec.Struct, frozen=True, kw_only=True):
    """One queue record's message, as the sender needs it: the command of a delivery."""

    message_id: str
    tenant: str
    recipient_id: int
    campaign_id: int | None
    price_cents: int
    correlation_id: str
    platform: str = "onlyfans"  # whose gateway and limiter carry it, as recorded when queued
    receive_count: int  # receives that counted, this one included
    body: dict[str, Any]  # the queue body, whose personal fields are sealed

    @classmethod
    def from_body(cls, body: dict[str, Any], receive_count: int) -> SendJob:
        message_id = str(body["messageId"])
        campaign_id = body.get("campaignId")
        return cls(
            message_id=message_id,
            tenant=str(body["tenant"]),
            recipient_id=int(body["recipientId"]),
            campaign_id=None if campaign_id is None else int(campaign_id),
            price_cents=int(body.get("priceCents") or 0),
            correlation_id=str(body.get("correlationId") or message_id),
            # Bodies queued before platforms were told apart carry none: all OnlyFans'.
            platform=str(body.get("platform") or "onlyfans"),
            receive_count=receive_count,
            body=body,
        )


class Disposition(msgspec.Struct, frozen=True):
    """What becomes of the queue record."""

    done: bool  # True: delete it from the queue; False: leave it for redelivery
    redeliver_after: float | None = None
    # Not tried (no token, no limiter): back on the queue after redeliver_after, its receive
    # taken back, so that waiting never counts towards the dead-letter queue.
    deferred: bool = False


Record = Literal["sent", "failed", "attempt_failed"]
Happened = Literal[
    "duplicate",  # settled already: dropped
    "gave_up",  # past its last receive
    "held",  # its campaign is paused
    "cancelled",  # its campaign is cancelled
    "erased",  # its recipient was erased: recorded failed
    "unroutable",  # no gateway here for its platform: recorded failed
    "limiter_away",  # no limiter to ask: deferred
    "no_token",  # no token soon enough: deferred
    "sent",
    "refused",  # failed for good by the platform
    "rate_limited",  # by the platform: a failed try
    "retrying",  # a failed try, redelivered later
    "failed",  # the last receive's try failed
]


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """The platform's answer, decided: what to record on the message and on the queue."""

    happened: Happened
    record: Record
    reason: str | None = None  # the failure recorded
    attempted: bool = False  # a failure that ends a try at the platform
    disposition: Disposition


Arrival = Literal["drop", "give_up", "send"]
CampaignAction = Literal["hold", "cancel"]


def on_arrival(status: str, receive_count: int, max_receive_count: int) -> Arrival:
    """A record received: drop a settled message's; give up on one past its last counted
    receive (a deferred SQS copy delivered to Lambda after it: that receive had the last
    try); else send it."""
    if status in SETTLED:
        return "drop"
    if receive_count > max_receive_count:
        return "give_up"
    return "send"


def for_campaign(stopped: str | None) -> CampaignAction | None:
    """A paused campaign's message is held (the campaign worker releases it on resume), a
    cancelled one's cancelled: either way it leaves the queue unsent."""
    if stopped == "paused":
        return "hold"
    if stopped == "cancelled":
        return "cancel"
    return None


def ask_again(result: PlatformSendResult, *, last_receive: bool) -> bool:
    """Before the last receive's timeout is called failed: asking again with the same key
    answers the first delivery's result, or sends it now, never twice."""
    return last_receive and result.outcome == "retryable" and result.ambiguous


def after_send(
    result: PlatformSendResult,
    receive_count: int,
    max_receive_count: int,
    retry_delays: Sequence[float],
) -> Verdict:
    """What the platform's answer means for the message and its queue record."""
    if result.outcome == "sent":
        return Verdict(happened="sent", record="sent", disposition=Disposition(True))
    if result.outcome == "permanent":
        reason = result.reason or "refused by the platform"
        done = Disposition(True)
        return Verdict(
            happened="refused", record="failed", reason=reason, attempted=True, disposition=done
        )
    if result.outcome == "rate_limited":
        # The limiter should prevent this; the platform's word wins. A try all the same.
        return Verdict(
            happened="rate_limited",
            record="attempt_failed",
            reason="rate limited by the platform",
            disposition=Disposition(False, result.retry_after or retry_delays[0]),
        )
    # Retryable: redeliver later; on the last receive the queue dead-letters it next.
    later = Disposition(False, backoff(receive_count, retry_delays))
    if receive_count >= max_receive_count:
        reason = f"gave up: {result.reason}"
        return Verdict(
            happened="failed", record="failed", reason=reason, attempted=True, disposition=later
        )
    reason = result.reason or "retryable error"
    return Verdict(happened="retrying", record="attempt_failed", reason=reason, disposition=later)


def backoff(receive_count: int, retry_delays: Sequence[float]) -> float:
    """How long the record stays hidden after its n-th receive failed: the n-th retry delay
    (the guide's 1 s, 2 s, 4 s); a queue allowing more receives than there are delays
    repeats the last one."""
    index = min(max(receive_count, 1), len(retry_delays)) - 1
    return retry_delays[index]


def dead_letter_unsettled(status: str) -> bool:
    """A dead letter whose message shows no outcome (its last sender died before recording
    one): it is recorded failed, so that a person sees it and can retry it."""
    return status not in SETTLED and status != "failed"


class Delivered(msgspec.Struct, frozen=True, kw_only=True):
    """What one delivery did, for the worker to log and count."""

    happened: Happened
    disposition: Disposition
    # The failure recorded on the message by this delivery, if it recorded one.
    failure: str | None = None
    result: PlatformSendResult | None = None
    token_at: datetime | None = None
    limiter_error: str | None = None
