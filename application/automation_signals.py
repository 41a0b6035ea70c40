"""What the log says to automations: which events start a sequence for a fan (enter) and
which end a fan's runs (exit). Read in log order; for one event, exits come before entries,
so a purchase that ends a run and starts another sequence does both, in that order.

- fanCreated / fanImported: a new fan (imported when its event committed in the same
  transaction as an import job's batch); a fan created with tags has those tags added, and
  one created with ``subscribedAt`` has subscribed;
- tagAdded / tagRemoved: a fan's tags changed (an update, compared with the fan before it);
- subscribed: ``subscribedAt`` set where it was not;
- purchase: a purchase recorded on the fan;
- replied: a message from the fan; deleted, erased: the fan is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import msgspec

from application.ports import Checkpoint, RecordedEvent
from domain.fan import Fan
from domain.import_job import ImportJob
from domain.inbound import InboundMessage

Kind = Literal["enter", "exit"]
# The fan as it was before an update (None: nothing listens to its tags, no need to know).
PreviousFan = Callable[[RecordedEvent], Awaitable[Any]]

_FAN_EVENTS = frozenset({Fan.Created, Fan.Updated, Fan.Deleted, Fan.Erased, Fan.PurchaseRecorded})
RELEVANT = _FAN_EVENTS | {InboundMessage.Received}
_IMPORT_EVENTS = frozenset({ImportJob.BatchImported})


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    kind: Kind
    tenant: str
    fan_id: int
    what: str  # a trigger type (enter) or an exit reason (exit)
    tag: str | None = None
    source: str = ""  # the event's id: what enrolled the fan, met again after a crash
    # The event's place in the log: a sequence created after it is not started by it.
    at: Checkpoint = Checkpoint()


def import_transactions(batch: Iterable[RecordedEvent]) -> set[int]:
    return {r.transaction_id for r in batch if type(r.event) in _IMPORT_EVENTS}


async def signals_of(
    recorded: RecordedEvent, *, imported: set[int], previous_fan: PreviousFan
) -> list[Signal]:
    event: Any = recorded.event
    kind = type(event)
    if kind not in RELEVANT:
        return []
    tenant = recorded.metadata.tenant
    source = str(recorded.event_id)
    at = Checkpoint(recorded.transaction_id, recorded.position)

    def signal(kind: Kind, what: str, tag: str | None = None, fan_id: int | None = None) -> Signal:
        fan = fan_id if fan_id is not None else _fan_id(recorded.stream_id)
        return Signal(
            kind=kind, tenant=tenant, fan_id=fan, what=what, tag=tag, source=source, at=at
        )

    if kind is InboundMessage.Received:
        return [signal("exit", "replied", fan_id=event.fan_id)]
    if kind is Fan.Deleted:
        return [signal("exit", "deleted")]
    if kind is Fan.Erased:
        return [signal("exit", "erased")]
    if kind is Fan.PurchaseRecorded:
        return [signal("exit", "purchased"), signal("enter", "purchase")]
    if kind is Fan.Created:
        new = "fanImported" if recorded.transaction_id in imported else "fanCreated"
        found = [signal("enter", new)]
        found += [signal("enter", "subscribed")] if event.subscribed_at is not None else []
        return found + [signal("enter", "tagAdded", tag) for tag in event.tags]
    before = await previous_fan(recorded)
    if before is None:
        return []
    added = [tag for tag in event.tags if tag not in before.tags]
    removed = [tag for tag in before.tags if tag not in event.tags]
    found = [signal("exit", "tagAdded", tag) for tag in added]
    found += [signal("exit", "tagRemoved", tag) for tag in removed]
    found += [signal("enter", "tagAdded", tag) for tag in added]
    if before.subscribed_at is None and event.subscribed_at is not None:
        found.append(signal("enter", "subscribed"))
    return found


def _fan_id(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-"))
