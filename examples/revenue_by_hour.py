"""Revenue by weekday and hour (UTC): an analyst's projection of fancrm's history, written with
eventsourcing's public ``Projection`` API, its table and tracking in one SQLite file.

    DATABASE_URL=postgresql://... uv run python examples/revenue_by_hour.py revenue.db
    DATABASE_URL=postgresql://... uv run python examples/revenue_by_hour.py revenue.db --tenant T

eventsourcing's ``ProjectionRunner`` reads fancrm's log through ``FancrmLog`` (the persistence
module adapters/postgres/eventsourcing_log), from after the last event the file has counted,
until the log's newest event, then the table is printed. No master key is given: payments hold
no personal field, and a projection that needs none should not be able to read any.

What fans paid, each payment at its own time: ``Fan.PurchaseRecorded`` (a PPV message bought,
a pledge) when it was recorded; ``Fan.TransactionImported`` (an earnings export's
subscriptions, tips, ...) when it happened (``occurred_at``), not when it was imported.
``Message.Purchased`` is left out: the same purchase records ``Fan.PurchaseRecorded`` too.

Each event's rows and its tracking record commit in one SQLite transaction, so a second run,
or a run after an interrupted one, carries on from the last event it counted and never counts
one twice.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from abc import abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder

from adapters.postgres.eventsourcing_log import FancrmLog
from domain.fan import Fan

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class HourRevenue(NamedTuple):
    weekday: str
    hour: int
    purchases_cents: int
    imported_cents: int
    payments: int

    @property
    def total_cents(self) -> int:
        return self.purchases_cents + self.imported_cents


class RevenueView(TrackingRecorder):
    """The projection's materialised view: what it needs, whatever database holds it."""

    @abstractmethod
    def add_payment(
        self, paid_at: datetime, amount_cents: int, *, imported: bool, tracking: Tracking
    ) -> None:
        """Count one payment in its (weekday, hour) and record ``tracking``, atomically."""

    @abstractmethod
    def table(self) -> list[HourRevenue]:
        """Every (weekday, hour) with a payment, Monday 00h first."""


class SQLiteRevenueView(SQLiteTrackingRecorder, RevenueView):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS revenue_by_hour ("
            " weekday INTEGER NOT NULL, hour INTEGER NOT NULL,"
            " purchases_cents INTEGER NOT NULL DEFAULT 0,"
            " imported_cents INTEGER NOT NULL DEFAULT 0,"
            " payments INTEGER NOT NULL DEFAULT 0,"
            " PRIMARY KEY (weekday, hour)) WITHOUT ROWID",
        ]

    def add_payment(
        self, paid_at: datetime, amount_cents: int, *, imported: bool, tracking: Tracking
    ) -> None:
        at = paid_at.astimezone(UTC)
        column = "imported_cents" if imported else "purchases_cents"
        with self.datastore.transaction(commit=True) as cursor:
            # The tracking record first: it refuses an event already counted (IntegrityError)
            # before the sums change, and it rolls back with them if they fail.
            self._insert_tracking(cursor, tracking)
            cursor.execute(
                f"INSERT INTO revenue_by_hour (weekday, hour, {column}, payments)"
                f" VALUES (?, ?, ?, 1) ON CONFLICT (weekday, hour) DO UPDATE SET"
                f" {column} = {column} + excluded.{column}, payments = payments + 1",
                (at.weekday(), at.hour, amount_cents),
            )

    def table(self) -> list[HourRevenue]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT weekday, hour, purchases_cents, imported_cents, payments"
                " FROM revenue_by_hour ORDER BY weekday, hour"
            )
            rows: list[sqlite3.Row] = cursor.fetchall()
        return [HourRevenue(WEEKDAYS[row[0]], *tuple(row)[1:]) for row in rows]


class RevenueByHour(Projection[RevenueView]):
    name = "revenue_by_hour"
    # No ``topics``: every event comes, and is tracked, so the view's tracking reaches the
    # log's newest event and ``replay`` knows when it is done. Filtered to the two revenue
    # types, it would stop at the last payment and never reach a head that is not one.

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        # Not revenue: only its position is recorded, so a later run starts after it.
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: Fan.PurchaseRecorded, tracking: Tracking) -> None:
        self.view.add_payment(
            domain_event.timestamp, domain_event.amount_cents, imported=False, tracking=tracking
        )

    @process_event.register
    def _(self, domain_event: Fan.TransactionImported, tracking: Tracking) -> None:
        self.view.add_payment(
            domain_event.occurred_at, domain_event.amount_cents, imported=True, tracking=tracking
        )


def view_env(db: str | Path) -> dict[str, str]:
    """Settings for the view only (the projection's name as their prefix): its SQLite file."""
    prefix = RevenueByHour.name.upper()
    return {
        f"{prefix}_PERSISTENCE_MODULE": "eventsourcing.sqlite",
        f"{prefix}_SQLITE_DBNAME": str(db),
    }


def claim(db: str | Path, tenant: str | None) -> None:
    """Refuse a file made for another account (or for all of them). Its tracking is a place in
    the whole log: resumed for another account, it would skip that account's earlier events."""
    scope = tenant or ""
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("CREATE TABLE IF NOT EXISTS revenue_scope (tenant TEXT NOT NULL)")
        found = connection.execute("SELECT tenant FROM revenue_scope").fetchone()
        if found is None:
            connection.execute("INSERT INTO revenue_scope VALUES (?)", (scope,))
        elif found[0] != scope:
            made_for = f"--tenant {found[0]}" if found[0] else "every tenant"
            raise SystemExit(f"{db} counts {made_for}: use another file")


def replay(
    db: str | Path, tenant: str | None = None, env: dict[str, str] | None = None
) -> list[HourRevenue]:
    """Run the projection into ``db`` until it has processed the log's newest event (of
    ``tenant``'s, if given); its table. Settings not in ``env`` come from the environment."""
    claim(db, tenant)
    settings = {**(env or {}), **view_env(db)}
    if tenant:
        settings["FANCRM_TENANT"] = tenant
    with ProjectionRunner(
        application_class=FancrmLog,
        projection_class=RevenueByHour,
        view_class=SQLiteRevenueView,
        env=settings,
    ) as runner:
        head = runner.app.recorder.max_notification_id()
        if head is not None:
            runner.wait(head, timeout=600)
        return runner.view.table()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Revenue by UTC weekday and hour.")
    parser.add_argument("db", help="the SQLite file of the view (made if missing, resumed if not)")
    parser.add_argument("--tenant", help="one creator account's revenue (default: all of them)")
    args = parser.parse_args(argv)
    rows = replay(args.db, args.tenant)
    print(f"{'weekday':<10} {'hour':>4} {'purchases':>10} {'imported':>10} {'total':>10} payments")
    for row in rows:
        print(
            f"{row.weekday:<10} {row.hour:>4} {row.purchases_cents:>10} {row.imported_cents:>10}"
            f" {row.total_cents:>10} {row.payments:>8}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
