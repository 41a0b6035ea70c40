"""examples/revenue_by_hour.py's projection, fed fancrm's domain events by hand: each payment in
its UTC weekday and hour (an imported one at the time it happened), everything else only
tracked, and an event counted once however often it comes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Tracking
from eventsourcing.utils import Environment

from domain.fan import Fan
from domain.message import Message
from examples.revenue_by_hour import (
    HourRevenue,
    RevenueByHour,
    RevenueView,
    SQLiteRevenueView,
    claim,
)

UPSTREAM = "fancrm"
# A Saturday: 2026-12-05 is one.
SATURDAY_2130 = datetime(2026, 12, 5, 21, 30, tzinfo=UTC)


def view_in(path: Path) -> RevenueView:
    """The view as eventsourcing's ProjectionRunner builds it: from the projection's env."""
    env = {
        "REVENUE_BY_HOUR_PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "REVENUE_BY_HOUR_SQLITE_DBNAME": str(path),
    }
    factory = InfrastructureFactory.construct(env=Environment(RevenueByHour.name, env))
    return factory.tracking_recorder(SQLiteRevenueView)


def purchase(at: datetime, amount_cents: int, version: int = 2) -> Fan.PurchaseRecorded:
    return Fan.PurchaseRecorded(
        originator_id="fan-7",
        originator_version=version,
        timestamp=at,
        amount_cents=amount_cents,
        message_id="m-1",
    )


def imported(recorded: datetime, occurred: datetime, amount_cents: int) -> Fan.TransactionImported:
    return Fan.TransactionImported(
        originator_id="fan-7",
        originator_version=3,
        timestamp=recorded,
        amount_cents=amount_cents,
        kind="tip",
        occurred_at=occurred,
        transaction_key="k-1",
    )


def test_payments_land_in_their_utc_weekday_and_hour_and_other_events_are_only_tracked(
    tmp_path: Path,
) -> None:
    projection = RevenueByHour(view=view_in(tmp_path / "view.db"))
    created = Fan.register(fan_id=7, tenant="t1", name="Ann").collect_events()[0]
    bought = Message.Purchased(
        originator_id="message-t1-m-1",
        originator_version=5,
        timestamp=SATURDAY_2130,
        amount_cents=1_500,
    )
    paris = timezone(timedelta(hours=1))
    events = [
        created,
        purchase(SATURDAY_2130, 1_500),
        bought,  # the same purchase, seen from the message: not counted again
        purchase(SATURDAY_2130 + timedelta(minutes=29), 250, version=4),
        # Imported on Saturday, paid on a Monday 00:15 in Paris: Sunday 23h UTC.
        imported(SATURDAY_2130, datetime(2023, 5, 1, 0, 15, tzinfo=paris), 999),
    ]
    for notification_id, event in enumerate(events, start=1):
        projection.process_event(event, Tracking(UPSTREAM, notification_id))

    assert projection.view.table() == [
        HourRevenue("Saturday", 21, purchases_cents=1_750, imported_cents=0, payments=2),
        HourRevenue("Sunday", 23, purchases_cents=0, imported_cents=999, payments=1),
    ]
    assert projection.view.max_tracking_id(UPSTREAM) == len(events)


def test_an_event_already_counted_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "view.db"
    projection = RevenueByHour(view=view_in(path))
    projection.process_event(purchase(SATURDAY_2130, 1_500), Tracking(UPSTREAM, 1))

    with pytest.raises(IntegrityError):
        projection.process_event(purchase(SATURDAY_2130, 1_500), Tracking(UPSTREAM, 1))
    # A second process on the same file (a run started again) sees one payment.
    again = RevenueByHour(view=view_in(path))
    assert again.view.table() == [HourRevenue("Saturday", 21, 1_500, 0, 1)]
    assert again.view.max_tracking_id(UPSTREAM) == 1
    assert again.view.table()[0].total_cents == 1_500


def test_a_file_counts_one_tenant_or_all_and_refuses_another(tmp_path: Path) -> None:
    # Its tracking is a place in the whole log: resumed for another account, it would skip
    # that account's earlier events.
    mine, everyone = tmp_path / "mine.db", tmp_path / "everyone.db"
    claim(mine, "creator-1")
    claim(mine, "creator-1")
    claim(everyone, None)

    with pytest.raises(SystemExit, match="counts --tenant creator-1"):
        claim(mine, "creator-2")
    with pytest.raises(SystemExit, match="counts --tenant creator-1"):
        claim(mine, None)
    with pytest.raises(SystemExit, match="counts every tenant"):
        claim(everyone, "creator-1")
