"""Which events start sequences for a fan and which end its runs (application.automation_signals),
read from recorded events with no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from application.automation_signals import Signal, import_transactions, signals_of
from application.ports import EventMetadata, RecordedEvent
from domain.base import DomainEvent
from domain.fan import Fan

META = EventMetadata(tenant="t1", actor="test", correlation_id="c", causation_id="c")


def recorded(event: DomainEvent, *, xid: int = 1, version: int = 1) -> RecordedEvent:
    return RecordedEvent(
        position=version,
        transaction_id=xid,
        event_id=uuid.uuid4(),
        stream_id=event.originator_id,
        stream_type="fan",
        version=version,
        event_type=type(event).__name__,
        event=event,
        metadata=META,
        recorded_at=datetime.now(UTC),
    )


def fan(**fields: Any) -> Fan:
    return Fan.register(fan_id=7, tenant="t1", name="Ann", **fields)


async def no_previous(_: RecordedEvent) -> None:
    return None


def what(signals: list[Signal]) -> list[tuple[str, str, str | None]]:
    return [(s.kind, s.what, s.tag) for s in signals]


async def test_a_new_fan_with_tags_and_a_subscription_day_enters_each_matching_trigger() -> None:
    created = fan(tags=["vip"], subscribed_at=date(2026, 1, 2)).collect_events()[0]

    found = await signals_of(recorded(created), imported=set(), previous_fan=no_previous)

    assert what(found) == [
        ("enter", "fanCreated", None),
        ("enter", "subscribed", None),
        ("enter", "tagAdded", "vip"),
    ]
    assert {s.fan_id for s in found} == {7}


async def test_a_fan_written_in_an_import_transaction_is_imported_not_created() -> None:
    created = recorded(fan().collect_events()[0], xid=42)

    found = await signals_of(created, imported={42}, previous_fan=no_previous)

    assert what(found) == [("enter", "fanImported", None)]
    assert import_transactions([created]) == set()


async def test_a_tag_change_exits_before_it_enters_and_names_what_was_added_and_removed() -> None:
    before = fan(tags=["old"])
    before.collect_events()
    after = fan(tags=["old"])
    after.collect_events()
    after.update(tags=["new"])
    updated = recorded(after.collect_events()[0], version=2)

    async def previous(_: RecordedEvent) -> Fan:
        return before

    found = await signals_of(updated, imported=set(), previous_fan=previous)

    assert what(found) == [
        ("exit", "tagAdded", "new"),
        ("exit", "tagRemoved", "old"),
        ("enter", "tagAdded", "new"),
    ]


async def test_an_update_nobody_listens_to_says_nothing() -> None:
    changed = fan(tags=["a"])
    changed.collect_events()
    changed.update(tags=["b"])

    found = await signals_of(
        recorded(changed.collect_events()[0], version=2), imported=set(), previous_fan=no_previous
    )

    assert found == []


async def test_a_purchase_ends_runs_that_exit_on_it_then_starts_purchase_sequences() -> None:
    paid = Fan.PurchaseRecorded(  # type: ignore[call-arg]
        originator_id="fan-7",
        originator_version=3,
        timestamp=datetime.now(UTC),
        amount_cents=500,
        message_id=str(uuid.uuid4()),
    )

    found = await signals_of(recorded(paid, version=3), imported=set(), previous_fan=no_previous)

    assert what(found) == [("exit", "purchased", None), ("enter", "purchase", None)]
