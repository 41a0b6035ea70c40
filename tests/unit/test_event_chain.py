"""The hash chain's rules, without a database: canonical bytes, links, and how verification
names the first place where a log no longer matches its chain."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import zip_longest

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.postgres.event_chain import (
    CHANGED,
    GENESIS,
    INSERTED,
    MOVED,
    REMOVED,
    ChainWalk,
    Link,
    LogRow,
    Tampering,
    canonical_bytes,
    chain,
    classify,
    link_hash,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(position: int, transaction_id: int | None = None, **changes: object) -> LogRow:
    base = LogRow(
        transaction_id=transaction_id if transaction_id is not None else 1000 + position,
        position=position,
        event_id=uuid.UUID(int=position),
        stream_id=f"fan-{position % 7}",
        stream_type="fan",
        version=position,
        event_type="FanUpdated",
        data=f'{{"value_cents": {position}}}',
        metadata='{"actor": "apikey:1", "tenant": "t1"}',
        recorded_at=T0 + timedelta(microseconds=position),
    )
    return msgspec.structs.replace(base, **changes)


def sealed(rows: list[LogRow]) -> list[Link]:
    return [
        Link(
            seq=n,
            transaction_id=r.transaction_id,
            position=r.position,
            event_id=r.event_id,
            hash=h,
        )
        for n, (r, h) in enumerate(zip(rows, chain(GENESIS, rows), strict=True), start=1)
    ]


def verify(links: list[Link], log: list[LogRow]) -> Tampering | None:
    """What the Postgres verifier does, over lists: walk in commit order, classify the first
    divergence with lookups in the whole log and the whole chain."""
    log = sorted(log, key=lambda r: (r.transaction_id, r.position))
    walk = ChainWalk()
    for link, found in zip_longest(links, log):
        divergence = walk.step(link, found)
        if divergence is not None:
            return classify(
                divergence,
                sealed_position_in_log=link is not None
                and any(r.position == link.position for r in log),
                row_position_sealed=found is not None
                and any(k.position == found.position for k in links),
                row_event_sealed_elsewhere=found is not None
                and any(
                    k.event_id == found.event_id and k.position != found.position for k in links
                ),
            )
    return None


def test_canonical_bytes_cover_every_stored_field() -> None:
    original = canonical_bytes(row(5))
    for change in (
        {"transaction_id": 1},
        {"event_id": uuid.uuid4()},
        {"stream_id": "fan-99"},
        {"stream_type": "message"},
        {"version": 99},
        {"event_type": "FanDeleted"},
        {"data": '{"value_cents": 6}'},
        {"metadata": '{"actor": "apikey:2", "tenant": "t1"}'},
        {"recorded_at": T0 + timedelta(microseconds=6)},
    ):
        assert canonical_bytes(row(5, **change)) != original, change


def test_the_canonical_encoding_never_changes() -> None:
    # Every sealed chain depends on it: a change here makes every stored link fail to verify.
    assert canonical_bytes(row(7)) == (
        b'["fancrm-chain/1",7,1007,"00000000-0000-0000-0000-000000000007","fan-0","fan",7,'
        b'"FanUpdated",1767225600000007,{"value_cents": 7},{"actor": "apikey:1", "tenant": "t1"}]'
    )
    assert link_hash(GENESIS, row(7)).hex() == (
        "6e643bccc4e06e35bcd0093bf7aa9f979c1739dca023f7d37f8453eb306dd492"
    )


def test_canonical_bytes_embed_stored_json_as_json() -> None:
    decoded = msgspec.json.decode(canonical_bytes(row(3)))
    assert decoded[-2] == {"value_cents": 3}
    assert decoded[-1] == {"actor": "apikey:1", "tenant": "t1"}


def test_a_link_covers_the_previous_hash() -> None:
    assert link_hash(GENESIS, row(1)) != link_hash(b"\x01" * 32, row(1))


def test_an_untouched_log_verifies() -> None:
    rows = [row(p) for p in range(1, 20)]
    assert verify(sealed(rows), rows) is None


def test_events_appended_after_the_seal_are_not_tampering_once_sealed_too() -> None:
    rows = [row(p) for p in range(1, 10)]
    links = sealed(rows[:5])
    more = chain(links[-1].hash, rows[5:])
    assert more == chain(GENESIS, rows)[5:]


logs = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, n - 1))
)


@settings(max_examples=60, deadline=None)
@given(logs)
def test_a_changed_event_is_found_at_its_position(case: tuple[int, int, int]) -> None:
    n, i, _ = case
    rows = [row(p) for p in range(1, n + 1)]
    links = sealed(rows)
    rows[i] = msgspec.structs.replace(rows[i], data='{"value_cents": -1}')
    found = verify(links, rows)
    assert found is not None
    assert (found.kind, found.position, found.seq) == (CHANGED, i + 1, i + 1)


@settings(max_examples=60, deadline=None)
@given(logs)
def test_a_removed_event_is_found_at_its_position(case: tuple[int, int, int]) -> None:
    n, i, _ = case
    rows = [row(p) for p in range(1, n + 1)]
    links = sealed(rows)
    del rows[i]
    found = verify(links, rows)
    assert found is not None
    assert (found.kind, found.position) == (REMOVED, i + 1)


@settings(max_examples=60, deadline=None)
@given(logs)
def test_two_swapped_events_are_found_at_the_first_of_them(case: tuple[int, int, int]) -> None:
    n, i, j = case
    if i == j:
        j = (i + 1) % n
    a, b = sorted((i, j))
    rows = [row(p) for p in range(1, n + 1)]
    links = sealed(rows)
    first, second = rows[a], rows[b]
    # Each takes the other's place in the commit order.
    rows[a] = msgspec.structs.replace(
        second, transaction_id=first.transaction_id, position=first.position
    )
    rows[b] = msgspec.structs.replace(
        first, transaction_id=second.transaction_id, position=second.position
    )
    found = verify(links, rows)
    assert found is not None
    assert (found.kind, found.position) == (MOVED, a + 1)


@settings(max_examples=60, deadline=None)
@given(logs)
def test_an_event_moved_in_commit_order_is_found_where_it_was(case: tuple[int, int, int]) -> None:
    n, i, _ = case
    rows = [row(p) for p in range(1, n + 1)]
    links = sealed(rows)
    # Its transaction id now sorts it after every other event.
    rows[i] = msgspec.structs.replace(rows[i], transaction_id=10**6)
    found = verify(links, rows)
    assert found is not None
    assert (found.kind, found.position) == ((CHANGED, i + 1) if i == n - 1 else (MOVED, i + 1))


@settings(max_examples=60, deadline=None)
@given(logs)
def test_an_event_inserted_into_the_sealed_log_is_found(case: tuple[int, int, int]) -> None:
    n, i, _ = case
    rows = [row(p) for p in range(1, n + 1)]
    links = sealed(rows)
    # A new position whose transaction id sorts it just before the i-th event.
    intruder = row(10_000 + i, transaction_id=rows[i].transaction_id - 1, event_id=uuid.uuid4())
    found = verify(links, [*rows, intruder])
    assert found is not None
    assert (found.kind, found.position) == (INSERTED, 10_000 + i)


def test_an_event_whose_id_was_rewritten_in_place_is_reported_changed() -> None:
    rows = [row(p) for p in range(1, 6)]
    links = sealed(rows)
    rows[2] = msgspec.structs.replace(rows[2], event_id=uuid.uuid4())
    found = verify(links, rows)
    assert found is not None
    assert (found.kind, found.position) == (CHANGED, 3)


def test_a_truncated_log_is_reported_removed_at_the_first_missing_event() -> None:
    rows = [row(p) for p in range(1, 6)]
    links = sealed(rows)
    found = verify(links, rows[:3])
    assert found is not None
    assert (found.kind, found.position, found.seq) == (REMOVED, 4, 4)
