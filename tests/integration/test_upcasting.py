"""Old shapes of stored events are upcast on read on both paths that decode them: a stream's
``load`` and the global log's ``read_all`` (what a replay reads), personal fields decrypted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters import bootstrap
from adapters.postgres.event_store.mapper import UPCASTERS
from application.ports import Checkpoint, EventMetadata, RecordedEvent
from domain.fan import Fan, fan_stream_id
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def fresh(fresh_database_url: str) -> AsyncIterator[bootstrap.Container]:
    container = await bootstrap.build(settings_for(fresh_database_url))
    try:
        yield container
    finally:
        await container.close()


def meta() -> EventMetadata:
    return EventMetadata(
        tenant="user-1",
        actor="user-1:key-1",
        correlation_id=uuid.uuid4().hex,
        causation_id=uuid.uuid4().hex,
    )


def cents_renamed(data: dict[str, Any]) -> dict[str, Any]:
    """The upcaster of a made-up schema 0 of FanCreated that called value_cents "cents"."""
    data = dict(data)
    data["value_cents"] = data.pop("cents")
    return data


async def read_stream_from_the_log(
    container: bootstrap.Container, stream_id: str
) -> list[RecordedEvent]:
    found: list[RecordedEvent] = []
    after = Checkpoint()
    while batch := await container.events.read_all(after, 2):
        found += [r for r in batch if r.stream_id == stream_id]
        after = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return found


async def test_an_event_stored_in_an_older_shape_is_upcast_by_load_and_by_read_all(
    fresh: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    fan = Fan.register(
        fan_id=1, tenant="user-1", name="Ann Smith", email="ann@example.com", value_cents=250
    )
    fan.update(notes="prefers evenings", value_cents=300)
    events = list(fan.collect_events())
    stream = fan_stream_id(1)
    async with asyncio.timeout(20):
        await fresh.events.append(stream, "fan", events, expected_version=0, metadata=meta())
        # As a writer of schema 0 stored it: its personal fields sealed like today's, its
        # value under the old name, and the old schema version in its metadata. The log is
        # append-only for clients: the rewrite goes round its trigger (this database is the
        # test's own).
        async with fresh.pool.acquire() as conn, conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
            changed = await conn.execute(
                "UPDATE events SET data = (data - 'value_cents')"
                " || jsonb_build_object('cents', data -> 'value_cents'),"
                " metadata = jsonb_set(metadata, '{schema_version}', '0')"
                " WHERE stream_id = $1 AND version = 1 AND data ? '_pii'",
                stream,
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        assert changed == "UPDATE 1"
        monkeypatch.setitem(UPCASTERS, ("FanCreated", 0), cents_renamed)

        loaded = await fresh.events.load(stream)
        replayed = await read_stream_from_the_log(fresh, stream)

    assert [r.event for r in loaded] == events
    assert [r.event for r in replayed] == events
    created = replayed[0].event
    assert isinstance(created, Fan.Created)
    assert (created.name, created.email, created.value_cents) == (
        "Ann Smith",
        "ann@example.com",
        250,
    )
    assert replayed[0].metadata.schema_version == 0
    assert replayed[1].metadata.schema_version == 1
