"""The Message aggregate: one message between a creator and a fan, and its delivery lifecycle.

    queued ──► dispatched ──► sent ──► read
       │            │
       └────────────┴──► failed ──(retry)──► queued

``queued``: accepted, waiting in the outbox. ``dispatched``: on the queue for the sender.
``sent``: the platform accepted it. ``failed``: given up on, with a reason, until a person
retries it. Inbound messages (a fan writing to the creator) start as ``received``.

``attempts`` counts tries at the platform, whatever came of them: a try the platform took
(``Sent``), a try that failed and will be tried again (``AttemptFailed``) and a last try that
failed (``Failed`` with ``attempted``). Waiting for a rate-limit token is never a try, nor is
a person's retry: that only puts the message on its way again (``Requeued``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import IllegalState, InvalidValue

Direction = Literal["in", "out"]
Status = Literal["queued", "dispatched", "held", "sent", "read", "failed", "cancelled", "received"]

MAX_CONTENT = 5_000
MAX_ATTACHMENTS = 20
MAX_URL = 2_048
# PPV: free, or between $3 and $200.
MIN_PRICE_CENTS = 300
MAX_PRICE_CENTS = 20_000
ATTACHMENT_TYPES = frozenset({"image", "video", "audio", "file"})
DEFAULT_PRIORITY = 5
# By default, priorities at or above this go to the high-priority queue (one-to-one
# replies); deployments may choose another threshold (CRM_HIGH_PRIORITY_FROM).
HIGH_PRIORITY = 8

# No whitespace or control characters anywhere: Postgres cannot store NUL (the read model
# keeps media URLs in jsonb), and no real URL holds one.
_HOST = re.compile(r"https://[^\s\x00-\x1f\x7f/?#]+[^\s\x00-\x1f\x7f]*")
_EXTENSIONS = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "heic"),
    "video": ("mp4", "mov", "webm", "m4v"),
    "audio": ("mp3", "m4a", "wav", "ogg", "aac"),
}


def canonical_message_id(text: str) -> str:
    """Message ids are UUIDs, written one way (lower case, hyphenated) whatever the caller sent."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidValue("message_id", "must be a UUID") from None


def message_stream_id(tenant: str, message_id: str) -> str:
    """A message's stream lives in its tenant's namespace: message ids are chosen by clients
    (or derived from values they can predict), so one tenant must never be able to take an
    id another will use. The id is always the last 36 characters (see ``message_id_of``)."""
    return f"message-{tenant}:{message_id}"


def legacy_message_stream_id(message_id: str) -> str:
    """Where messages recorded before ids were scoped by tenant live; read, never written."""
    return f"message-{message_id}"


def message_id_of(stream_id: str) -> str:
    """The message id of a message stream, scoped (``message-<tenant>:<uuid>``) or legacy
    (``message-<uuid>``): a canonical UUID is always 36 characters."""
    return stream_id[-36:]


def attachment_type_of(url: str) -> str:
    """The media type a bare URL most likely holds, from its extension."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    for kind, extensions in _EXTENSIONS.items():
        if path.endswith(tuple("." + e for e in extensions)):
            return kind
    return "file"


def normalise_content(content: object) -> str:
    if not isinstance(content, str):
        raise InvalidValue("content", "must be a string")
    if "\x00" in content:
        raise InvalidValue("content", "must not contain NUL characters")
    if not content.strip():
        raise InvalidValue("content", "must not be empty")
    if len(content) > MAX_CONTENT:
        raise InvalidValue("content", f"must be at most {MAX_CONTENT} characters")
    return content


def normalise_price(price_cents: object) -> int:
    if price_cents is None:
        return 0
    if isinstance(price_cents, bool) or not isinstance(price_cents, int):
        raise InvalidValue("price_cents", "must be an integer number of cents")
    if price_cents != 0 and not MIN_PRICE_CENTS <= price_cents <= MAX_PRICE_CENTS:
        raise InvalidValue(
            "price_cents",
            f"must be 0 (free) or between {MIN_PRICE_CENTS} and {MAX_PRICE_CENTS} cents",
        )
    return price_cents


def normalise_attachments(
    attachments: Iterable[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    result = []
    for kind, url in attachments or ():
        if kind not in ATTACHMENT_TYPES:
            raise InvalidValue(
                "attachments", f"type must be one of {', '.join(sorted(ATTACHMENT_TYPES))}"
            )
        if not isinstance(url, str) or len(url) > MAX_URL or not _HOST.fullmatch(url):
            raise InvalidValue("attachments", "media URLs must be https:// URLs")
        if not _has_host(url):
            raise InvalidValue("attachments", "media URLs must name a host")
        result.append((kind, url))
    if len(result) > MAX_ATTACHMENTS:
        raise InvalidValue("attachments", f"at most {MAX_ATTACHMENTS} attachments")
    return tuple(result)


def _has_host(url: str) -> bool:
    # "https://:443/x" and "https://user@/x" get past the pattern but name no host.
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # a malformed IPv6 literal, such as "https://[::1"
        return False


def _reason(text: str) -> str:
    # Reasons come from other systems; keep them printable and storable (no NUL).
    return text.replace("\x00", "")[:500] or "unknown"


def normalise_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise InvalidValue("priority", "must be an integer from 1 to 10")
    return priority


def queue_for(priority: int, campaign_id: int | None, high_priority_from: int) -> str:
    """Campaign messages always go to the normal queue, whatever their priority: a mass
    message must never delay a one-to-one reply."""
    if campaign_id is not None:
        return "normal"
    return "high" if priority >= high_priority_from else "normal"


class Message(BaseAggregate[str]):
    @staticmethod
    def create_id(tenant: str, message_id: str) -> str:
        return message_stream_id(tenant, message_id)

    class Event(DomainEvent):
        pass

    class Queued(Event, AggregateCreated):
        message_id: str
        tenant: str
        conversation_id: int
        fan_id: int
        # Personal data: both read back as None once the fan is erased (the store destroyed
        # the key they were encrypted with), and the log must still decode and replay.
        content: str | None
        price_cents: int
        attachments: tuple[tuple[str, str], ...] | None
        priority: int
        campaign_id: int | None
        # The saved reply (domain/script.py) it was written from; absent from messages
        # queued before scripts existed, which decode as None.
        script_id: int | None = None
        # The workspace member who sent it (or launched its campaign): what it earns, and the
        # replies it draws, are the member's. None: a key of the first release, or a process.
        sent_by: str | None = None
        # The A/B test variant (index) of its campaign it carries; ``to_rest``: sent to the
        # rest of the audience as the test's winner, so outside the test's results.
        variant: int | None = None
        to_rest: bool = False
        # The platform that carries it, decided from its fan when it was queued, so the
        # sender never guesses; messages queued before platforms were told apart were all
        # OnlyFans', and decode so.
        platform: str = "onlyfans"

    class Dispatched(Event):
        queue: str

    class Sent(Event):
        platform_message_id: str | None
        # Only the sender records Sent, after a try at the platform (events stored before
        # this field existed were all such tries).
        attempted: bool = True

    class Failed(Event):
        reason: str
        # Whether a try at the platform failed (the sender's last try, or a refusal); not
        # for a relay that could not reach the queue, an erased recipient or a dead letter
        # found without an outcome. Stored before this field existed: unknown, so False.
        attempted: bool = False

    class AttemptFailed(Event):
        """A try at the platform failed with an error worth another try, which will come."""

        reason: str

    class Requeued(Event):
        pass

    class Read(Event):
        pass

    class Purchased(Event):
        amount_cents: int

    class Delivered(Event):
        pass

    class Clicked(Event):
        pass

    class Held(Event):
        reason: str

    class Released(Event):
        pass

    class Cancelled(Event):
        reason: str

    @classmethod
    def queue(
        cls,
        *,
        message_id: str,
        tenant: str,
        conversation_id: int,
        fan_id: int,
        content: str,
        price_cents: int | None = 0,
        attachments: Iterable[tuple[str, str]] | None = None,
        priority: int = DEFAULT_PRIORITY,
        campaign_id: int | None = None,
        script_id: int | None = None,
        sent_by: str | None = None,
        variant: int | None = None,
        to_rest: bool = False,
        platform: str = "onlyfans",
    ) -> Message:
        """An outgoing message, accepted for sending."""
        return cls(
            message_id=message_id,
            tenant=tenant,
            conversation_id=conversation_id,
            fan_id=fan_id,
            content=normalise_content(content),
            price_cents=normalise_price(price_cents),
            attachments=normalise_attachments(attachments),
            priority=normalise_priority(priority),
            campaign_id=campaign_id,
            script_id=script_id,
            sent_by=sent_by,
            variant=variant,
            to_rest=to_rest,
            platform=platform,
        )

    @event(Queued)
    def __init__(
        self,
        message_id: str,
        tenant: str,
        conversation_id: int,
        fan_id: int,
        content: str | None,
        price_cents: int,
        attachments: tuple[tuple[str, str], ...] | None,
        priority: int,
        campaign_id: int | None,
        script_id: int | None = None,
        sent_by: str | None = None,
        variant: int | None = None,
        to_rest: bool = False,
        platform: str = "onlyfans",
    ) -> None:
        self.message_id = message_id
        self.tenant = tenant
        self.conversation_id = conversation_id
        self.fan_id = fan_id
        self.direction: Direction = "out"
        self.content = content
        self.price_cents = price_cents
        self.attachments = tuple(tuple(a) for a in attachments or ())
        self.priority = priority
        self.campaign_id = campaign_id
        self.script_id = script_id
        self.sent_by = sent_by
        self.variant = variant
        self.to_rest = to_rest
        self.platform = platform
        self.status: Status = "queued"
        self.failure_reason: str | None = None
        self.attempts = 0  # tries at the platform
        self.rounds = 1  # times put on its way: the first, then once per person's retry
        self.purchased_cents = 0
        self.delivered = False
        self.clicked = False

    def queue_name(self, high_priority_from: int = HIGH_PRIORITY) -> str:
        return queue_for(self.priority, self.campaign_id, high_priority_from)

    def dispatch(self, queue: str) -> bool:
        """Recorded once the message is on the queue; repeats (a relay re-sending after a
        crash) record nothing."""
        if self.status != "queued":
            return False
        self._dispatched(queue=queue)
        return True

    @classmethod
    def dispatched_at(cls, stream_id: str, version: int, queue: str) -> Message.Dispatched:
        """The event ``dispatch`` records for a message still queued at ``version`` — for a
        relay that knows it is (its outbox row exists only while the message is queued)
        without loading the stream; appended at that expected version, so a message that
        moved on since is refused, never overwritten."""
        # The metaclass makes events dataclasses, which mypy cannot see.
        return cls.Dispatched(  # type: ignore[call-arg]
            originator_id=stream_id,
            originator_version=version + 1,
            timestamp=cls.Dispatched.create_timestamp(),
            queue=queue,
        )

    @event(Dispatched)
    def _dispatched(self, queue: str) -> None:
        self.status = "dispatched"

    def mark_sent(self, platform_message_id: str | None) -> bool:
        """The platform accepted it. Wins over an earlier "failed": a relay may give up on a
        message whose earlier send did reach the queue; what was delivered was delivered."""
        if self.status in ("sent", "read"):
            return False
        if platform_message_id is not None:
            platform_message_id = platform_message_id.replace("\x00", "")[:200] or None
        self._sent(platform_message_id=platform_message_id, attempted=True)
        return True

    @event(Sent)
    def _sent(self, platform_message_id: str | None, attempted: bool = True) -> None:
        self.status = "sent"
        self.failure_reason = None
        self.attempts += attempted

    def fail(self, reason: str, *, attempted: bool = False) -> bool:
        """Given up on. ``attempted``: this ends a try at the platform (a refusal, or the last
        try's error), which counts as one."""
        if self.status in ("failed", "sent", "read"):
            return False
        self._failed(reason=_reason(reason), attempted=attempted)
        return True

    @event(Failed)
    def _failed(self, reason: str, attempted: bool = False) -> None:
        self.status = "failed"
        self.failure_reason = reason
        self.attempts += attempted

    def attempt_failed(self, reason: str) -> bool:
        """A try at the platform failed with an error worth another try; recorded while the
        message may still be tried: on its way, or failed yet still on the queue (a relay gave
        up on a send that did reach it; a dead letter redriven)."""
        if self.status not in ("queued", "dispatched", "failed"):
            return False
        self._attempt_failed(reason=_reason(reason))
        return True

    @event(AttemptFailed)
    def _attempt_failed(self, reason: str) -> None:
        self.attempts += 1

    def retry(self) -> None:
        if self.status != "failed":
            raise IllegalState(f"message {self.message_id} is {self.status}, not failed")
        self._requeued()

    @event(Requeued)
    def _requeued(self) -> None:
        self.status = "queued"
        self.failure_reason = None
        self.rounds += 1

    def mark_read(self) -> bool:
        if self.status == "read":
            return False
        if self.status != "sent":
            raise IllegalState(f"message {self.message_id} is {self.status}, not sent")
        self._read()
        return True

    @event(Read)
    def _read(self) -> None:
        self.status = "read"

    def purchase(self, amount_cents: int) -> bool:
        """The fan paid to unlock this PPV message; reported once, recorded once."""
        if self.purchased_cents:
            return False
        if self.price_cents == 0:
            raise IllegalState(f"message {self.message_id} is free: nothing to purchase")
        if self.status not in ("sent", "read"):
            raise IllegalState(f"message {self.message_id} is {self.status}, not sent")
        if (
            isinstance(amount_cents, bool)
            or not isinstance(amount_cents, int)
            or not (0 < amount_cents <= MAX_PRICE_CENTS)
        ):
            raise InvalidValue("amount_cents", f"must be between 1 and {MAX_PRICE_CENTS} cents")
        self._purchased(amount_cents=amount_cents)
        return True

    @event(Purchased)
    def _purchased(self, amount_cents: int) -> None:
        self.purchased_cents = amount_cents

    def confirm_delivery(self) -> bool:
        """The platform reports the message reached the fan; reported once, recorded once."""
        if self.delivered:
            return False
        if self.status not in ("sent", "read"):
            raise IllegalState(f"message {self.message_id} is {self.status}, not sent")
        self._delivered()
        return True

    @event(Delivered)
    def _delivered(self) -> None:
        self.delivered = True

    def record_click(self) -> bool:
        """The fan opened a link or media of the message; the first click counts."""
        if self.clicked:
            return False
        if self.status not in ("sent", "read"):
            raise IllegalState(f"message {self.message_id} is {self.status}, not sent")
        self._clicked()
        return True

    @event(Clicked)
    def _clicked(self) -> None:
        self.clicked = True

    def hold(self, reason: str) -> bool:
        """Taken off the queue unsent because its campaign is paused; released on resume."""
        if self.status not in ("queued", "dispatched"):
            return False
        self._held(reason=reason[:500])
        return True

    @event(Held)
    def _held(self, reason: str) -> None:
        self.status = "held"

    def release(self) -> bool:
        if self.status != "held":
            return False
        self._released()
        return True

    @event(Released)
    def _released(self) -> None:
        self.status = "queued"

    def cancel(self, reason: str) -> bool:
        """Never to be sent (its campaign was cancelled). A message already sent stays sent."""
        if self.status not in ("queued", "dispatched", "held"):
            return False
        self._cancelled(reason=reason[:500])
        return True

    @event(Cancelled)
    def _cancelled(self, reason: str) -> None:
        self.status = "cancelled"
