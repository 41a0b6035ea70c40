"""Tamper evidence: a hash chain over the event log in commit order, and its verification.

Link n of the chain covers the n-th event in (transaction_id, position) order, the order every
reader of the log uses (see event_store.py for why): ``hash_n = sha256(hash_{n-1} || bytes_n)``
from 32 zero bytes. ``bytes_n`` are the event's canonical bytes, made from the row as STORED —
personal fields still encrypted, jsonb as Postgres prints it — so verifying needs no key, and
erasing a fan (which destroys its key but never touches an event row) leaves the chain valid.

Changing one stored byte of a sealed event changes its link and every later one; publishing the
head (``GET /api/audit/head``) elsewhere makes rewriting the whole chain detectable too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_encode = msgspec.json.Encoder().encode

# How verification names what it found at the first broken link.
CHANGED, REMOVED, INSERTED, MOVED = "changed", "removed", "inserted", "moved"


class LogRow(msgspec.Struct, frozen=True, kw_only=True):
    """An event row as stored; ``data`` and ``metadata`` are the jsonb values as text."""

    transaction_id: int
    position: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    data: str
    metadata: str
    recorded_at: datetime


class Link(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    transaction_id: int
    position: int
    event_id: UUID
    hash: bytes


class Tampering(msgspec.Struct, frozen=True, kw_only=True):
    """The first place where the log no longer matches its chain."""

    kind: str  # changed | removed | inserted | moved
    position: int
    seq: int  # the link (1-based place in commit order) where the log diverges
    detail: str


def canonical_bytes(row: LogRow) -> bytes:
    """A deterministic encoding of everything stored about an event. jsonb's text form is
    already canonical (Postgres sorts and de-duplicates object keys, prints numbers exactly),
    so it is embedded as is; the time is whole microseconds since the epoch."""
    micros = (row.recorded_at - _EPOCH) // _MICROSECOND
    return _encode(
        [
            "fancrm-chain/1",
            row.position,
            row.transaction_id,
            str(row.event_id),
            row.stream_id,
            row.stream_type,
            row.version,
            row.event_type,
            micros,
            msgspec.Raw(row.data.encode()),
            msgspec.Raw(row.metadata.encode()),
        ]
    )


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def link_hash(previous: bytes, row: LogRow) -> bytes:
    return hashlib.sha256(previous + canonical_bytes(row)).digest()


def chain(previous: bytes, rows: list[LogRow]) -> list[bytes]:
    """The hashes of ``rows`` following a link whose hash is ``previous``."""
    hashes = []
    for row in rows:
        previous = link_hash(previous, row)
        hashes.append(previous)
    return hashes


class Divergence(msgspec.Struct, frozen=True):
    """Where the log and the chain first disagree, before it is classified."""

    seq: int
    link: Link | None
    row: LogRow | None


class ChainWalk:
    """Recomputes the chain over the log, one (link, row) pair at a time in commit order.

    ``step`` returns the first divergence: a link whose event is not the row at its place,
    or whose recomputed hash differs; a link or a row with no partner (the log or the chain
    ended early)."""

    def __init__(self) -> None:
        self.previous = GENESIS
        self.checked = 0

    def step(self, link: Link | None, row: LogRow | None) -> Divergence | None:
        seq = self.checked + 1
        if link is None or row is None:
            return Divergence(seq, link, row)
        if (link.position, link.event_id) != (row.position, row.event_id):
            return Divergence(seq, link, row)
        recomputed = link_hash(self.previous, row)
        if recomputed != link.hash:
            return Divergence(seq, link, row)
        self.previous = recomputed
        self.checked = seq
        return None


def classify(
    divergence: Divergence,
    *,
    sealed_position_in_log: bool,
    row_position_sealed: bool,
    row_event_sealed_elsewhere: bool,
) -> Tampering:
    """Name what happened at a divergence. The three facts are looked up by the caller:
    whether the link's position still exists anywhere in the log, whether the row found in
    its place has a sealed position, and whether the row's event id was sealed at another
    position."""
    link, row, seq = divergence.link, divergence.row, divergence.seq
    if link is not None and row is not None and link.position == row.position:
        if link.event_id != row.event_id and row_event_sealed_elsewhere:
            return Tampering(
                kind=MOVED,
                position=link.position,
                seq=seq,
                detail=f"position {link.position} now holds event {row.event_id}, which was"
                f" sealed elsewhere (in place of {link.event_id})",
            )
        return Tampering(
            kind=CHANGED,
            position=link.position,
            seq=seq,
            detail=f"event at position {link.position} differs from what was sealed",
        )
    if link is not None and not sealed_position_in_log:
        return Tampering(
            kind=REMOVED,
            position=link.position,
            seq=seq,
            detail=f"event at position {link.position} (event {link.event_id}) is missing",
        )
    if row is not None and (link is None or not row_position_sealed):
        return Tampering(
            kind=INSERTED,
            position=row.position,
            seq=seq,
            detail=f"event at position {row.position} was never sealed but sits inside the"
            " sealed part of the log",
        )
    assert link is not None  # (the branch above takes every row without a link)
    found = f"position {row.position}" if row is not None else "the end of the sealed log"
    return Tampering(
        kind=MOVED,
        position=link.position,
        seq=seq,
        detail=f"event at position {link.position} is out of its commit order:"
        f" {found} is in its place",
    )


def row_from_record(record: Any) -> LogRow:
    return LogRow(
        transaction_id=record["transaction_id"],
        position=record["position"],
        event_id=record["event_id"],
        stream_id=record["stream_id"],
        stream_type=record["stream_type"],
        version=record["version"],
        event_type=record["event_type"],
        data=record["data"],
        metadata=record["metadata"],
        recorded_at=record["recorded_at"],
    )
