"""One client's view of the live stream: its account, its filters, a bounded queue.

The hub offers every update of the client's account; what passes the filters waits in the
queue. A queue that fills up means the client reads slower than the account writes: it is not
allowed to hold the hub back, so it is ended and its connection closed with the position to
resume from (the last update it was handed).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from adapters.live.updates import UPDATE_TYPES, Update
from application.ports import Checkpoint

QUEUE_SIZE = 1000


class BadFilter(ValueError):
    pass


@dataclass(frozen=True)
class Filters:
    conversation_id: int | None = None
    campaign_id: int | None = None
    types: frozenset[str] = frozenset(UPDATE_TYPES)

    @classmethod
    def parse(
        cls, conversation_id: str | None, campaign_id: str | None, types: str | None
    ) -> Filters:
        chosen = frozenset(UPDATE_TYPES)
        if types is not None:
            chosen = frozenset(t.strip() for t in types.split(",") if t.strip())
            unknown = chosen - set(UPDATE_TYPES)
            if unknown or not chosen:
                raise BadFilter(
                    f"types must be some of {', '.join(UPDATE_TYPES)}; got {types[:200]!r}"
                )
        return cls(_id(conversation_id, "conversationId"), _id(campaign_id, "campaignId"), chosen)

    def admit(self, update: Update) -> bool:
        """Whether the client asked for ``update``; queue.status concerns the whole account
        and passes the id filters."""
        if update["type"] not in self.types:
            return False
        if update["type"] == "queue.status":
            return True
        if (
            self.conversation_id is not None
            and update.get("conversationId") != self.conversation_id
        ):
            return False
        return self.campaign_id is None or update.get("campaignId") == self.campaign_id


def _id(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadFilter(f"{name} must be a positive integer")
    return int(value)


# An update's place in the log: its event's, and which of the event's updates it is (one
# event may make two: a message and its conversation).
Key = tuple[Checkpoint, int]
# An item: the update and its place (None: not from the log, as queue.status).
Item = tuple[Key | None, Update]
# Put in the queue of a stream that ended, to wake its reader; never sent.
WAKE: Update = {"type": "wake"}
# After every update of the event at a checkpoint.
AFTER_ALL = 1 << 30


@dataclass(eq=False)
class Subscription:
    tenant: str
    filters: Filters
    # Where the hub stood when the subscription joined: everything after it is queued.
    joined_at: Checkpoint
    queue: asyncio.Queue[Item] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    # The workspace member whose ticket or key opened it (None: a first-release key): a
    # member removed meanwhile loses the stream.
    member_id: str | None = None
    # Set when the stream must end: ``why`` is "slow" (the queue overflowed) or "revoked".
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    why: str = ""
    # The last update handed to the client, in commit order: nothing at or before it is
    # handed again (a replay and the queue may both hold it).
    sent: Key = (Checkpoint(), AFTER_ALL)
    sent_position: int | None = None

    def offer(self, key: Key | None, update: Update) -> None:
        if self.ended.is_set() or not self.filters.admit(update):
            return
        try:
            self.queue.put_nowait((key, update))
        except asyncio.QueueFull:
            self.end("slow")

    def end(self, why: str) -> None:
        if self.ended.is_set():
            return
        self.why = why
        self.ended.set()
        # Wakes a client waiting on an empty queue (a full one has items to wake it).
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((None, WAKE))

    def take(self, key: Key | None, update: Update) -> bool:
        """Whether to hand ``update`` to the client (False: it has had it already); notes it
        as handed."""
        if key is None:
            return True
        if key <= self.sent:
            return False
        self.sent = key
        self.sent_position = update["position"]
        return True
