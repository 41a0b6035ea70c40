"""The log numbered 1, 2, 3... in commit order, for readers that need one growing number per
event (eventsourcing's notification ids: adapters/eventsourcing_log.py).

Positions are not that number: they are taken at insert and become visible at commit, so a
reader that kept "position > n" would skip a late commit (store.py). The event chain is: the
sealer links the n-th event in (transaction id, position) order as ``seq`` n, and reads only
below ``pg_snapshot_xmin`` (event_chain_store.py), so a seq, once given, never has an event
slipped in before it. The price: only sealed events are numbered, so these readers see the log
as far as the sealer (``crm worker sealer``, part of ``crm dev``) has gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from adapters.postgres.event_store.mapper import from_text
from adapters.postgres.event_store.questions import Db
from adapters.postgres.event_store.store import decode_rows
from adapters.postgres.personal_data import PersonalDataCodec
from application.ports import RecordedEvent

# recorder.COLUMNS, from the join (event_chain has a position and a transaction id too), in
# the order mapper.from_text reads them by place; seq last.
_COLUMNS = (
    "e.position, e.transaction_id, e.event_id, e.stream_id, e.stream_type, e.version,"
    " e.event_type, e.data::text AS data, e.metadata::text AS metadata, e.recorded_at"
)

# A window of the chain's numbers (after $1, up to $2), joined to the log by position. Windows
# rather than "after $1 ... LIMIT": the plan for an open range was a hash join over the whole
# log and a sort, for every batch (a replay quadratic in the log's length); a bounded range of
# the chain's key is an index scan and a lookup per event.
_WINDOW = f"""
SELECT {_COLUMNS}, c.seq FROM event_chain c JOIN events e ON e.position = c.position
WHERE c.seq > $1 AND c.seq <= $2
  AND ($3::text[] IS NULL OR e.event_type = ANY($3))
  AND ($4::text IS NULL OR e.metadata ->> 'tenant' = $4)
  AND ($5::timestamptz IS NULL OR e.recorded_at <= $5)
ORDER BY c.seq
LIMIT $6
"""

_HEAD = "SELECT coalesce(max(seq), 0) FROM event_chain"

# A filtered read looks at this many numbers at a time (at least its limit).
WINDOW = 10_000

# The chain's primary key read backwards: it stops at the first event of the tenant.
_LAST_SEQ = """
SELECT c.seq FROM event_chain c JOIN events e ON e.position = c.position
WHERE $1::text IS NULL OR e.metadata ->> 'tenant' = $1
ORDER BY c.seq DESC LIMIT 1
"""

_SEQ_OF = "SELECT seq FROM event_chain WHERE position = $1"


class SealedEvent(NamedTuple):
    seq: int
    data: str  # the event's fields as stored: personal ones sealed
    recorded: RecordedEvent


async def sealed_events(
    db: Db,
    personal: PersonalDataCodec | None,
    *,
    after: int,
    limit: int,
    stop: int | None = None,
    event_types: Sequence[str] | None = None,
    tenant: str | None = None,
    until: datetime | None = None,
) -> list[SealedEvent]:
    """Up to ``limit`` sealed events numbered after ``after`` (and up to ``stop``), of
    ``event_types``, of ``tenant``, recorded at or before ``until`` (None: any), decoded,
    with their numbers. Without ``personal`` (no master key) personal fields read as None."""
    types = None if event_types is None else list(event_types)
    filtered = types is not None or tenant is not None or until is not None
    rows: list[Any] = []
    if not filtered and stop is None:
        # The chain numbers 1, 2, 3... without gaps: the next ``limit`` numbers are the batch.
        rows = await db.fetch(_WINDOW, after, after + limit, None, None, None, limit)
    else:
        head: int = await db.fetchval(_HEAD)
        end_of_log = head if stop is None else min(stop, head)
        window = limit if not filtered else max(limit, WINDOW)
        start = after
        while len(rows) < limit and start < end_of_log:
            end = min(start + window, end_of_log)
            more = limit - len(rows)
            rows += await db.fetch(_WINDOW, start, end, types, tenant, until, more)
            start = end
    if personal is None:
        events = [_hidden(row) for row in rows]
    else:
        events = (await decode_rows(db, personal, rows))[0]
    return [
        SealedEvent(row["seq"], row["data"], event) for row, event in zip(rows, events, strict=True)
    ]


async def last_seq(db: Db, tenant: str | None = None) -> int | None:
    """The number of the newest sealed event (of ``tenant``); None if there is none."""
    value: int | None = await db.fetchval(_LAST_SEQ, tenant)
    return value


async def seq_of(db: Db, position: int) -> int | None:
    """The number of the event at ``position``; None if it is not sealed (yet)."""
    value: int | None = await db.fetchval(_SEQ_OF, position)
    return value


def _hidden(row: object) -> RecordedEvent:
    # No key opens anything: sealed personal fields decode as None, exactly as for an erased
    # subject (``erased`` names them), and no key is ever loaded.
    sealed = PersonalDataCodec.sealed_in(row[6], row[3], row[7])  # type: ignore[index]
    return from_text(row, sealed, {})
