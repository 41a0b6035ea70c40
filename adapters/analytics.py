"""``replay``: an analyst's projection over fancrm's log, in a Python shell or a notebook.

    >>> from adapters.analytics import replay
    >>> def purchases(e):  # e: application.ports.RecordedEvent
    ...     return {"hour": e.recorded_at.hour, "cents": e.event.amount_cents}
    >>> replay(purchases, topics=["FanPurchaseRecorded"], output="pandas")

The log is read as the eventsourcing module reads it (adapters/postgres/eventsourcing_log/):
sealed events in commit order, decoded by the store, personal fields only with the master key
and never an erased fan's (without the key, ``RecordedEvent.erased`` names the hidden fields
as it names an erased fan's). Settings come from the environment (``DATABASE_URL``,
``CRM_MASTER_KEY``), or ``env``. A replay reads the log as it stands when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Tracking

from adapters.postgres.eventsourcing_log import Factory, FancrmLog
from adapters.postgres.eventsourcing_log.mapper import LogNotification
from adapters.postgres.eventsourcing_log.recorder import LogRecorder

Row = Mapping[str, Any]
OUTPUTS = ("rows", "arrow", "pandas")


def replay(
    projection: Any,
    until: int | datetime | None = None,
    *,
    topics: Sequence[str] = (),
    tenant: str | None = None,
    output: str = "rows",
    env: Mapping[str, str] | None = None,
    batch: int = 5000,
) -> Any:
    """Run ``projection`` over the log up to ``until`` (a position: that event included; a
    timezone-aware datetime: events recorded at or before it) and return its table.

    ``projection`` is a function of each ``RecordedEvent`` (the domain event in ``.event``,
    with ``.recorded_at``, ``.metadata.tenant``, ``.position``...) returning a row (a dict),
    rows, or None; or an eventsourcing ``Projection`` (``process_event(event, tracking)``) whose
    ``rows()``, or its view's, gives the table. ``topics``: event types (stable names or
    eventsourcing topics) to read. ``output``: "rows" (a list of dicts), "arrow" (a
    pyarrow.Table) or "pandas" (a DataFrame, if pandas is installed)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    settings = {**os.environ, **(env or {})}
    if tenant is not None:
        if not tenant.strip():
            # An empty filter would read as no filter: every tenant's events.
            raise ValueError("tenant must name a creator account, not be empty")
        settings[Factory.TENANT] = tenant
    factory = Factory(settings)
    try:
        recorder = factory.application_recorder()
        rows, feed = _feeder(projection)
        for notification in _notifications(recorder, until, topics, batch):
            feed(notification)
        table = rows if rows is not None else _rows_of(projection)
    finally:
        factory.close()
    return _as(table, output)


def _notifications(
    recorder: LogRecorder, until: int | datetime | None, topics: Sequence[str], batch: int
) -> Iterable[LogNotification]:
    stop, until_time = _bounds(recorder, until)
    if stop is None:  # the log as it stands now, not a chase after its growth
        stop = recorder.max_notification_id() or 0
    ahead = recorder.fetch(0, batch, stop, topics, until_time)
    while ahead is not None:
        found = ahead.result()
        # The next batch is read and decoded on the recorder's loop meanwhile.
        ahead = recorder.fetch(found[-1].id, batch, stop, topics, until_time) if (
            len(found) == batch
        ) else None  # fmt: skip
        for notification in found:
            assert isinstance(notification, LogNotification)
            yield notification


def _bounds(
    recorder: LogRecorder, until: int | datetime | None
) -> tuple[int | None, datetime | None]:
    if until is None:
        return None, None
    if isinstance(until, datetime):
        if until.tzinfo is None:
            raise ValueError("until: a datetime with its timezone (fancrm's times are UTC)")
        return None, until
    if isinstance(until, bool) or not isinstance(until, int):
        raise TypeError(f"until: a position (int) or a datetime, not {until!r}")
    stop = recorder.id_of(until)
    if stop is None:
        raise ValueError(
            f"until: no sealed event at position {until} (not in the log, or not sealed yet:"
            " `crm worker sealer` numbers events moments after they commit)"
        )
    return stop, None


def _feeder(projection: Any) -> tuple[list[Row] | None, Callable[[LogNotification], None]]:
    """Where rows go (None: the projection keeps them), and how each notification is fed."""
    process = getattr(projection, "process_event", None)
    if process is not None:
        return None, lambda n: process(n.recorded.event, Tracking(FancrmLog.name, n.id))
    if not callable(projection):
        raise TypeError("projection: a function of each event, or an eventsourcing Projection")
    rows: list[Row] = []

    def feed(notification: LogNotification) -> None:
        made = projection(notification.recorded)
        if made is None:
            return
        if isinstance(made, Mapping):
            rows.append(made)
        else:
            rows.extend(made)

    return rows, feed


def _rows_of(projection: Any) -> list[Row]:
    view = getattr(projection, "view", None)
    rows = getattr(projection, "rows", None) or getattr(view, "rows", None)
    if rows is None:
        raise TypeError("an eventsourcing Projection given to replay needs rows(), or its view")
    return list(rows())


def _as(rows: list[Row], output: str) -> Any:
    if output == "rows":
        return [dict(row) for row in rows]
    import pyarrow as pa

    table = pa.Table.from_pylist([dict(row) for row in rows])
    if output == "arrow":
        return table
    try:
        return table.to_pandas()
    except ImportError as missing:
        raise ImportError("output='pandas' needs pandas: pip install pandas") from missing
