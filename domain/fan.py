"""The Fan aggregate: a person who follows a creator, with a spend history, tags and notes.

Rules live here, not in handlers: ``register`` and ``update`` validate and normalise every value
before an event is triggered, because the ``@event`` bodies re-run on every replay and must
only assign state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from eventsourcing.domain import BaseAggregate, event
from eventsourcing.utils import get_topic

from domain.base import AggregateCreated, DomainEvent
from domain.errors import Gone, IllegalState, InvalidValue
from domain.person import FanAlreadyLinked, NotLinked

PLATFORMS = frozenset({"onlyfans", "fansly", "patreon"})
MAX_NAME = 200
MAX_NOTES = 10_000
MAX_TAGS = 50
MAX_TAG_LENGTH = 40
# Ten million dollars: far above any real lifetime spend, low enough to catch unit mistakes.
MAX_VALUE_CENTS = 1_000_000_000

_HANDLE = re.compile(r"@?[A-Za-z0-9_.\-]{1,64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_TAG = re.compile(r"[\w][\w \-]*")

# What a fan paid for, as earnings exports name it (the import maps their spellings).
TRANSACTION_KINDS = ("subscription", "renewal", "tip", "ppv", "post")

EDITABLE_FIELDS = ("name", "handle", "email", "value_cents", "tags", "notes", "subscribed_at")


def fan_stream_id(fan_id: int) -> str:
    return f"fan-{fan_id}"


class HandleTaken(IllegalState):
    """Another live fan of the tenant holds this handle on this platform (409 at the API)."""

    def __init__(self, fan_id: int) -> None:
        super().__init__(f"fan {fan_id} already has this handle on this platform")
        self.fan_id = fan_id


def handle_key(platform: str, handle: str | None) -> str | None:
    """What makes a handle one fan's within a tenant: the platform and the handle compared
    without case or a leading '@' ("@Ann" and "ann" are one person). The import matches rows by
    the same key (application/import_batch.py), so the API and the import agree on who holds a
    handle. None: no handle, nothing to hold."""
    if not handle:
        return None
    return f"{platform}:handle:{handle.strip().lstrip('@').lower()}"


def normalise_name(value: str | None) -> str | None:
    text = _optional_text("name", value)
    if text is not None and len(text) > MAX_NAME:
        raise InvalidValue("name", f"must be at most {MAX_NAME} characters")
    return text


def normalise_handle(value: str | None) -> str | None:
    text = _optional_text("handle", value)
    if text is not None and not _HANDLE.fullmatch(text):
        raise InvalidValue(
            "handle", "must be 1-64 letters, digits, '_', '.' or '-', optionally after '@'"
        )
    return text


def normalise_email(value: str | None) -> str | None:
    text = _optional_text("email", value)
    if text is None:
        return None
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise InvalidValue("email", "is not a valid email address")
    return text


def normalise_value_cents(value: Any) -> int:
    # bool is an int in Python; True cents is a bug, not a value.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue("value_cents", "must be an integer number of cents")
    if value < 0:
        raise InvalidValue("value_cents", "must not be negative")
    if value > MAX_VALUE_CENTS:
        raise InvalidValue("value_cents", f"must be at most {MAX_VALUE_CENTS}")
    return value


def normalise_tags(values: Iterable[str] | None) -> tuple[str, ...]:
    """Tags are case-insensitive labels: trimmed, lower-cased, de-duplicated in order."""
    if values is None:
        return ()
    if isinstance(values, str):
        raise InvalidValue("tags", "must be a list of strings")
    tags: list[str] = []
    for raw in values:
        _require_text("tags", raw)
        tag = " ".join(raw.split()).lower()
        if not tag:
            raise InvalidValue("tags", "must not contain empty tags")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidValue("tags", f"each tag must be at most {MAX_TAG_LENGTH} characters")
        if not _TAG.fullmatch(tag):
            raise InvalidValue("tags", "each tag may hold only letters, digits, ' ', '_', '-'")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidValue("tags", f"at most {MAX_TAGS} tags")
    return tuple(tags)


def normalise_subscribed_at(value: Any) -> date | None:
    """The day the fan first subscribed, as a spreadsheet or the platform gives it."""
    if value is None:
        return None
    # A datetime is a date too: a day is what is meant, and what is kept.
    if isinstance(value, datetime):
        return value.date()
    if not isinstance(value, date):
        raise InvalidValue("subscribed_at", "must be a date")
    return value


def normalise_notes(value: str | None) -> str | None:
    if value is None:
        return None
    _require_text("notes", value)
    if len(value) > MAX_NOTES:
        raise InvalidValue("notes", f"must be at most {MAX_NOTES} characters")
    return value or None


def _optional_text(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    _require_text(field, value)
    return value.strip() or None


def _require_text(field: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidValue(field, "must be a string")
    # NUL is never text a person typed, and Postgres cannot store it in text or jsonb.
    if "\x00" in value:
        raise InvalidValue(field, "must not contain NUL characters")


class Fan(BaseAggregate[str]):
    @staticmethod
    def create_id(fan_id: int) -> str:
        return fan_stream_id(fan_id)

    class Event(DomainEvent):
        pass

    class Created(Event, AggregateCreated):
        fan_id: int
        tenant: str
        platform: str
        platform_id: str | None
        name: str | None
        handle: str | None
        email: str | None
        value_cents: int
        tags: tuple[str, ...]
        notes: str | None
        # Added after the first events were stored: those decode with None (none had one).
        subscribed_at: date | None = None

    class Updated(Event):
        # The new values of every editable field: a reader never needs the previous event
        # to know the state, and an absent field is never confused with a cleared one.
        name: str | None
        handle: str | None
        email: str | None
        value_cents: int
        tags: tuple[str, ...]
        notes: str | None
        subscribed_at: date | None = None

    class Deleted(Event):
        pass

    class ConversationOpened(Event):
        conversation_id: int

    class PurchaseRecorded(Event):
        # Revenue from the fan (a PPV message bought): adds to the lifetime value.
        amount_cents: int
        message_id: str

    class LinkedToPerson(Event):
        # The fan's side of a person's link (domain/person.py): what makes one person per fan
        # a rule of the fan's own stream.
        person_id: int

    class UnlinkedFromPerson(Event):
        person_id: int

    class TransactionImported(Event):
        # A transaction from before fancrm (an earnings export): revenue dated when it
        # happened (``occurred_at``), while the event's own timestamp says when it was
        # recorded. A type apart from PurchaseRecorded, which names the message bought:
        # history was no answer to any message of ours, so nothing that attributes purchases
        # to messages or campaigns may count it. ``transaction_key`` makes it idempotent.
        amount_cents: int
        kind: str
        occurred_at: datetime
        transaction_key: str

    class Erased(Event):
        # Carries no personal data: the event store destroys the fan's data key in the same
        # transaction, which makes every earlier copy of the personal fields unreadable.
        pass

    @classmethod
    def register(
        cls,
        *,
        fan_id: int,
        tenant: str,
        platform: str = "onlyfans",
        platform_id: str | None = None,
        name: str | None = None,
        handle: str | None = None,
        email: str | None = None,
        value_cents: int = 0,
        tags: Iterable[str] | None = None,
        notes: str | None = None,
        subscribed_at: date | None = None,
    ) -> Fan:
        if platform not in PLATFORMS:
            raise InvalidValue("platform", f"must be one of {', '.join(sorted(PLATFORMS))}")
        fields = _validated(name, handle, email, value_cents, tags, notes, subscribed_at)
        return cls(
            fan_id=fan_id,
            tenant=tenant,
            platform=platform,
            platform_id=_optional_text("platform_id", platform_id),
            **fields,
        )

    @classmethod
    def registered(
        cls,
        *,
        fan_id: int,
        tenant: str,
        platform: str = "onlyfans",
        platform_id: str | None = None,
        name: str | None = None,
        handle: str | None = None,
        email: str | None = None,
        value_cents: int = 0,
        tags: Iterable[str] | None = None,
        notes: str | None = None,
        subscribed_at: date | None = None,
    ) -> Fan.Created:
        """The event ``register`` records, built without an aggregate: the same rules, in the
        same order, so the same values and errors. ``event.mutate(None)`` gives the fan."""
        if platform not in PLATFORMS:
            raise InvalidValue("platform", f"must be one of {', '.join(sorted(PLATFORMS))}")
        fields = _validated(name, handle, email, value_cents, tags, notes, subscribed_at)
        # The metaclass makes events dataclasses, which mypy cannot see.
        return cls.Created(  # type: ignore[call-arg]
            originator_topic=_fan_topic(),
            originator_id=fan_stream_id(fan_id),
            originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Created.create_timestamp(),
            fan_id=fan_id,
            tenant=tenant,
            platform=platform,
            platform_id=_optional_text("platform_id", platform_id),
            **fields,
        )

    @event(Created)
    def __init__(
        self,
        fan_id: int,
        tenant: str,
        platform: str,
        platform_id: str | None,
        name: str | None,
        handle: str | None,
        email: str | None,
        value_cents: int,
        tags: tuple[str, ...],
        notes: str | None,
        subscribed_at: date | None = None,
    ) -> None:
        self.fan_id = fan_id
        self.tenant = tenant
        self.platform = platform
        self.platform_id = platform_id
        self.name = name
        self.handle = handle
        self.email = email
        self.value_cents = value_cents
        self.tags = tuple(tags)
        self.notes = notes
        self.subscribed_at = subscribed_at
        self.deleted = False
        self.erased = False
        self.conversation_id: int | None = None
        self.person_id: int | None = None
        self.transaction_keys: set[str] = set()

    def update(self, **changes: Any) -> bool:
        """Apply the given editable fields; returns False (and records nothing) if none changed."""
        self._require_live()
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise InvalidValue(sorted(unknown)[0], "is not an editable field")
        current = {name: getattr(self, name) for name in EDITABLE_FIELDS}
        fields = _validated(**{**current, **changes})
        if fields == current:
            return False
        self._updated(**fields)
        return True

    @event(Updated)
    def _updated(
        self,
        name: str | None,
        handle: str | None,
        email: str | None,
        value_cents: int,
        tags: tuple[str, ...],
        notes: str | None,
        subscribed_at: date | None = None,
    ) -> None:
        self.name = name
        self.handle = handle
        self.email = email
        self.value_cents = value_cents
        self.tags = tuple(tags)
        self.notes = notes
        self.subscribed_at = subscribed_at

    def delete(self) -> None:
        self._require_live()
        self._deleted()

    @event(Deleted)
    def _deleted(self) -> None:
        self.deleted = True

    def open_conversation(self, conversation_id: int) -> int:
        """The fan's one conversation: opened on first need, then always the same."""
        self._require_live()
        if self.conversation_id is None:
            self._conversation_opened(conversation_id=conversation_id)
        assert self.conversation_id is not None
        return self.conversation_id

    @classmethod
    def conversation_opened_at(
        cls, fan_id: int, version: int, conversation_id: int
    ) -> Fan.ConversationOpened:
        """The event ``open_conversation`` records, for a fan known (from a read model) to be
        live and without a conversation at ``version``: appended at that expected version, so
        a fan that changed since is refused, never overwritten."""
        # The metaclass makes events dataclasses, which mypy cannot see.
        return cls.ConversationOpened(  # type: ignore[call-arg]
            originator_id=fan_stream_id(fan_id),
            originator_version=version + 1,
            timestamp=cls.ConversationOpened.create_timestamp(),
            conversation_id=conversation_id,
        )

    @event(ConversationOpened)
    def _conversation_opened(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id

    def record_purchase(self, amount_cents: int, message_id: str) -> None:
        """Money the fan spent; kept for deleted and erased fans too (revenue stays true)."""
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
            raise InvalidValue("amount_cents", "must be a positive integer number of cents")
        self._purchase_recorded(amount_cents=amount_cents, message_id=message_id)

    @event(PurchaseRecorded)
    def _purchase_recorded(self, amount_cents: int, message_id: str) -> None:
        self.value_cents = min(self.value_cents + amount_cents, MAX_VALUE_CENTS)

    def link_to_person(self, person_id: int) -> bool:
        """Join a person; False (nothing recorded) if the fan is that person's already."""
        self._require_live()
        if self.person_id == person_id:
            return False
        if self.person_id is not None:
            raise FanAlreadyLinked(self.fan_id, self.person_id)
        self._linked_to_person(person_id=person_id)
        return True

    @event(LinkedToPerson)
    def _linked_to_person(self, person_id: int) -> None:
        self.person_id = person_id

    def unlink_from_person(self, person_id: int) -> None:
        """Leave the person; a deleted or erased fan may leave too (nothing personal moves)."""
        if self.person_id != person_id:
            raise NotLinked(f"fan {self.fan_id} is not linked to person {person_id}")
        self._unlinked_from_person(person_id=person_id)

    @event(UnlinkedFromPerson)
    def _unlinked_from_person(self, person_id: int) -> None:
        self.person_id = None

    def import_transaction(
        self, *, amount_cents: int, kind: str, occurred_at: datetime, transaction_key: str
    ) -> bool:
        """Record a past transaction once: False (nothing recorded) if its key was imported
        before. Kept for deleted and erased fans too, as purchases are (revenue stays true)."""
        if transaction_key in self.transaction_keys:
            return False
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
            raise InvalidValue("amount_cents", "must be a positive integer number of cents")
        if kind not in TRANSACTION_KINDS:
            raise InvalidValue("kind", f"must be one of {', '.join(TRANSACTION_KINDS)}")
        if occurred_at.tzinfo is None:
            raise InvalidValue("occurred_at", "must carry a time zone")
        self._transaction_imported(
            amount_cents=amount_cents,
            kind=kind,
            occurred_at=occurred_at,
            transaction_key=transaction_key,
        )
        return True

    @event(TransactionImported)
    def _transaction_imported(
        self, amount_cents: int, kind: str, occurred_at: datetime, transaction_key: str
    ) -> None:
        self.value_cents = min(self.value_cents + amount_cents, MAX_VALUE_CENTS)
        self.transaction_keys.add(transaction_key)

    def erase(self) -> None:
        """Honour the right to erasure; allowed for deleted fans too, once."""
        if self.erased:
            raise Gone(f"fan {self.fan_id} was erased")
        self._erased()

    @event(Erased)
    def _erased(self) -> None:
        self.deleted = True
        self.erased = True
        self.name = self.handle = self.email = self.notes = self.platform_id = None

    @property
    def held_handle(self) -> str | None:
        """The handle key this fan holds alone in its tenant: none once deleted or erased."""
        return None if self.deleted else handle_key(self.platform, self.handle)

    def _require_live(self) -> None:
        if self.deleted:
            raise Gone(f"fan {self.fan_id} was deleted")


_topic: list[str] = []


def _fan_topic() -> str:
    """The aggregate's topic, as ``register`` stamps its Created event (looked up once)."""
    if not _topic:
        _topic.append(get_topic(Fan))
    return _topic[0]


def _validated(
    name: str | None,
    handle: str | None,
    email: str | None,
    value_cents: int,
    tags: Iterable[str] | None,
    notes: str | None,
    subscribed_at: date | None = None,
) -> dict[str, Any]:
    fields = {
        "name": normalise_name(name),
        "handle": normalise_handle(handle),
        "email": normalise_email(email),
        "value_cents": normalise_value_cents(value_cents),
        "tags": normalise_tags(tags),
        "notes": normalise_notes(notes),
        "subscribed_at": normalise_subscribed_at(subscribed_at),
    }
    if fields["name"] is None and fields["handle"] is None:
        raise InvalidValue("name", "a fan needs a name or a handle")
    return fields
