"""Sealing an append's personal fields before its rows are made (PersonalDataCodec does the
cryptography): the keys of every subject are looked up in one query, each stream's fields are
sealed in memory, the keys made along the way are shared by the later streams of the append,
and the outbox bodies are sealed with the same keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters import tracing
from adapters.postgres.event_store.mapper import TypedEvent
from adapters.postgres.event_store.recorder import KeyChanges, OutboxRows
from adapters.postgres.personal_data import PendingKeys, PersonalDataCodec, subject_of
from application.ports import OutboxEntry, StreamWrite
from domain.events import PERSONAL_DATA


async def seal_writes(
    conn: Any,
    personal: PersonalDataCodec,
    writes: Sequence[StreamWrite],
    typed: list[list[TypedEvent]],
    outbox: Sequence[OutboxEntry] = (),
    *,
    new_streams_keyless: bool = True,
) -> tuple[KeyChanges, list[PendingKeys], OutboxRows | None]:
    """Seal ``typed`` (the writes' events) in place: the key changes to store with them, the
    same per write to report once committed (``PersonalDataCodec.committed``), and the outbox
    rows with their bodies sealed (None without entries). ``new_streams_keyless``: a new
    stream's own subject is taken to have no key yet, and is not looked up."""
    known, looked_up = await _prefetch_keys(conn, personal, writes, typed, new_streams_keyless)
    pending_all: list[PendingKeys] = []
    new: list[tuple[str, bytes]] = []
    erased: set[str] = set()
    for write, items in zip(writes, typed, strict=True):
        pending = await personal.protect(
            conn,
            write.stream_id,
            write.expected_version,
            items,
            known,
            looked_up,
            new_stream_keyless=new_streams_keyless,
        )
        for subject, (aead, wrapped_key) in pending.new_keys.items():
            known[subject] = aead
            new.append((subject, wrapped_key))
        erased |= pending.erased_subjects
        pending_all.append(pending)
    rows = None
    if outbox:
        rows = OutboxRows(
            [entry.queue for entry in outbox],
            [entry.message_id for entry in outbox],
            [await personal.seal_body(conn, e.body, e.subject, e.personal, known) for e in outbox],
            # The command's trace context (W3C traceparent) rides with each message, so the
            # relay and the sender continue the request's trace (adapters/tracing.py).
            [tracing.with_trace_context(entry.attributes) for entry in outbox],
            [entry.stream_version for entry in outbox],
        )
    return KeyChanges(new, sorted(erased), personal.master_key_id), pending_all, rows


async def _prefetch_keys(
    conn: Any,
    personal: PersonalDataCodec,
    writes: Sequence[StreamWrite],
    typed: list[list[TypedEvent]],
    new_streams_keyless: bool,
) -> tuple[dict[str, AESGCM | None], set[str]]:
    """Every stored key the writes need, in one query: the keys found (None: erased), and
    every subject looked up (those without a key get a new one)."""
    subjects: set[str] = set()
    if personal.keys is None:
        return {}, subjects
    for write, items in zip(writes, typed, strict=True):
        for event_type, _, fields in items:
            spec = PERSONAL_DATA.get(event_type)
            if spec is not None:
                subject = subject_of(spec, event_type, write.stream_id, fields)
                new = subject == write.stream_id and write.expected_version == 0
                if not (new and new_streams_keyless):
                    subjects.add(subject)
    found = await personal.keys.load(conn, subjects) if subjects else {}
    return found, subjects
