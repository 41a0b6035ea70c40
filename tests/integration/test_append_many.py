"""append_all of many streams in one statement (adapters/postgres/event_store/recorder.py): all or
nothing, each stream checked at its expected version, keys shared within the append."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import bootstrap
from application.context import CommandContext
from application.errors import ConcurrencyError
from application.messages import outbox_entry, stream_write
from application.ports import StreamWrite
from domain.fan import Fan, fan_stream_id
from domain.message import Message
from tests.integration.test_event_store import fan_events, meta, new_fan_id


async def stream_length(container: bootstrap.Container, stream_id: str) -> int:
    return int(
        await container.pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", stream_id)
    )


def new_fan_write(fan_id: int, updates: int = 0) -> StreamWrite:
    return StreamWrite(fan_stream_id(fan_id), "fan", fan_events(fan_id, updates=updates), 0)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    existing=st.lists(st.integers(0, 3), min_size=2, max_size=6),
    claimed=st.data(),
)
async def test_many_streams_are_appended_all_or_nothing(
    container: bootstrap.Container, existing: list[int], claimed: st.DataObject
) -> None:
    """Streams that already hold ``existing[i]`` events, each appended at a claimed version:
    the append goes in whole exactly when every claim is right, else nothing does."""
    fan_ids = [new_fan_id() for _ in existing]
    for fan_id, count in zip(fan_ids, existing, strict=True):
        if count:
            await container.events.append_all(
                [new_fan_write(fan_id, updates=count - 1)], metadata=meta()
            )
    expected = [claimed.draw(st.sampled_from([n, n, n + 1, max(n - 1, 0)])) for n in existing]
    writes = []
    for fan_id, version in zip(fan_ids, expected, strict=True):
        fan = Fan.register(fan_id=fan_id, tenant="user-1", name="x")
        if version:
            event = Fan.conversation_opened_at(fan_id, version, 1)
            writes.append(StreamWrite(fan_stream_id(fan_id), "fan", [event], version))
        else:
            writes.append(StreamWrite(fan.id, "fan", list(fan.collect_events()), 0))
    right = expected == existing

    if right:
        positions = await container.events.append_all(writes, metadata=meta())
        assert len(positions) == len(writes)
        assert positions == sorted(positions)
    else:
        with pytest.raises(ConcurrencyError):
            await container.events.append_all(writes, metadata=meta())

    for fan_id, count in zip(fan_ids, existing, strict=True):
        assert await stream_length(container, fan_stream_id(fan_id)) == count + right


async def test_a_new_fan_and_a_message_to_it_share_one_key_in_one_append(
    container: bootstrap.Container,
) -> None:
    fan_id = new_fan_id()
    tenant = f"user-{uuid.uuid4().hex[:8]}"
    fan = Fan.register(fan_id=fan_id, tenant=tenant, name="Ann", email="ann@example.com")
    message = Message.queue(
        message_id=str(uuid.uuid4()),
        tenant=tenant,
        conversation_id=1,
        fan_id=fan_id,
        content="for Ann only",
    )
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id="c")
    # The message first: its subject's key is made by it, and the fan's event must reuse it.
    await container.events.append_all(
        [stream_write(message, "message"), stream_write(fan, "fan")],
        metadata=ctx.metadata(),
        outbox=[outbox_entry(message, ctx)],
    )

    keys = await container.pool.fetchval(
        "SELECT count(*) FROM subject_keys WHERE subject_id = $1", fan_stream_id(fan_id)
    )
    assert keys == 1
    [created] = await container.events.load(fan_stream_id(fan_id))
    [queued] = await container.events.load(message.id)
    assert (created.event.name, created.event.email) == ("Ann", "ann@example.com")
    assert queued.event.content == "for Ann only"
    body = await container.pool.fetchval(
        "SELECT body FROM outbox WHERE message_id = $1", message.message_id
    )
    assert "for Ann only" not in body
    opened = await container.personal.open_body(
        container.pool, json.loads(body), fan_stream_id(fan_id)
    )
    assert opened["content"] == "for Ann only"


async def test_each_write_keeps_its_own_metadata(container: bootstrap.Container) -> None:
    first, second = new_fan_id(), new_fan_id()
    writes = [
        new_fan_write(first),
        StreamWrite(
            fan_stream_id(second), "fan", fan_events(second), 0, metadata=meta(actor="other")
        ),
    ]

    await container.events.append_all(writes, metadata=meta(actor="default"))

    [a] = await container.events.load(fan_stream_id(first))
    [b] = await container.events.load(fan_stream_id(second))
    assert (a.metadata.actor, b.metadata.actor) == ("default", "other")


async def test_an_append_refused_for_a_moved_stream_writes_no_outbox_row_either(
    container: bootstrap.Container,
) -> None:
    fan_id = new_fan_id()
    tenant = f"user-{uuid.uuid4().hex[:8]}"
    await container.events.append_all([new_fan_write(fan_id)], metadata=meta(tenant))
    message = Message.queue(
        message_id=str(uuid.uuid4()), tenant=tenant, conversation_id=1, fan_id=fan_id, content="hi"
    )
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id="c")
    stale = StreamWrite(fan_stream_id(fan_id), "fan", fan_events(fan_id), 0)

    with pytest.raises(ConcurrencyError):
        await container.events.append_all(
            [stream_write(message, "message"), stale],
            metadata=ctx.metadata(),
            outbox=[outbox_entry(message, ctx)],
        )

    assert await stream_length(container, message.id) == 0
    assert await stream_length(container, fan_stream_id(fan_id)) == 1
    outboxed = await container.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE message_id = $1", message.message_id
    )
    assert outboxed == 0
