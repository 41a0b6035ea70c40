"""Read-decide-append retries: a command that loses a race to another writer tries again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from application import streams
from application.context import CommandContext
from application.errors import ConcurrencyError, MessageIdReused
from application.streams import handle, load, retry_on_conflict, save
from domain.fan import Fan, fan_stream_id
from tests.support.fakes import InMemoryEventStore


def losing(times: int) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """An attempt that conflicts ``times`` times, then saves; and the list of its calls."""
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(len(calls))
        if len(calls) <= times:
            raise ConcurrencyError("another writer got in first")
        return "saved"

    return calls, attempt


async def test_a_command_that_loses_every_race_but_the_last_is_saved() -> None:
    calls, attempt = losing(streams.CONFLICT_RETRIES - 1)
    assert await retry_on_conflict(attempt, retry=True) == "saved"
    assert len(calls) == streams.CONFLICT_RETRIES


async def test_a_command_that_loses_every_race_reports_the_conflict() -> None:
    calls, attempt = losing(streams.CONFLICT_RETRIES)
    with pytest.raises(ConcurrencyError):
        await retry_on_conflict(attempt, retry=True)
    assert len(calls) == streams.CONFLICT_RETRIES


async def test_a_command_pinned_to_a_version_is_never_retried() -> None:
    calls, attempt = losing(1)
    with pytest.raises(ConcurrencyError):
        await retry_on_conflict(attempt, retry=False)
    assert calls == [0]


# -- handle: read, decide, append, again on a conflict ---------------------------------------

ALICE = CommandContext(tenant="alice", actor="apikey:a", correlation_id="c-1")


async def a_fan(store: InMemoryEventStore) -> int:
    """Given: a fan of alice's, one event in its stream."""
    fan = Fan.register(fan_id=7, tenant="alice", platform="onlyfans", name="Ann")
    await save(store, fan, "fan", ALICE)
    return fan.fan_id


def add_note(note: str) -> Callable[[Fan], Awaitable[bool]]:
    async def decide(fan: Fan) -> bool:
        return fan.update(notes=note)

    return decide


async def test_handle_appends_what_was_decided_after_the_version_read(
    store: InMemoryEventStore,
) -> None:
    fan_id = await a_fan(store)
    handled = await handle(store, fan_stream_id(fan_id), add_note("hi"), ALICE, stream_type="fan")
    assert handled.decision
    assert handled.appended
    assert [r.version for r in store.log] == [1, 2]
    assert handled.position == store.log[-1].position
    assert handled.aggregate.notes == "hi"


async def test_handle_that_decides_nothing_answers_the_streams_last_position(
    store: InMemoryEventStore,
) -> None:
    fan_id = await a_fan(store)
    handled = await handle(store, fan_stream_id(fan_id), add_note(""), ALICE, stream_type="fan")
    assert not handled.appended
    assert handled.position == store.log[-1].position
    assert len(store.log) == 1


async def test_handle_decides_again_on_a_fresh_read_when_another_writer_got_in_first(
    store: InMemoryEventStore,
) -> None:
    fan_id = await a_fan(store)

    async def other_writer() -> None:
        fan, _ = await load(store, fan_stream_id(fan_id), tenant="alice")
        fan.update(value_cents=5)
        await save(store, fan, "fan", ALICE)

    store.before_append.append(other_writer)
    handled = await handle(store, fan_stream_id(fan_id), add_note("hi"), ALICE, stream_type="fan")
    assert (handled.aggregate.value_cents, handled.aggregate.notes) == (5, "hi")
    assert [r.version for r in store.log] == [1, 2, 3]


async def test_handle_pinned_to_a_version_reports_the_conflict(store: InMemoryEventStore) -> None:
    fan_id = await a_fan(store)
    fan, _ = await load(store, fan_stream_id(fan_id), tenant="alice")
    fan.update(value_cents=5)
    store.before_append.append(lambda: save(store, fan, "fan", ALICE))
    with pytest.raises(ConcurrencyError):
        await handle(
            store,
            fan_stream_id(fan_id),
            add_note("hi"),
            ALICE,
            stream_type="fan",
            retry=False,
        )
    assert [r.event.value_cents for r in store.log[1:]] == [5]


async def test_handle_starts_from_the_callers_aggregate_then_reads_the_stream(
    store: InMemoryEventStore,
) -> None:
    fan_id = await a_fan(store)
    stale, position = await load(store, fan_stream_id(fan_id), tenant="alice")
    fresh, _ = await load(store, fan_stream_id(fan_id), tenant="alice")
    fresh.update(value_cents=5)
    await save(store, fresh, "fan", ALICE)
    reads: list[int] = []

    async def read() -> tuple[Fan, int]:
        reads.append(1)
        return await load(store, fan_stream_id(fan_id), tenant="alice")

    handled = await handle(
        store,
        fan_stream_id(fan_id),
        add_note("hi"),
        ALICE,
        stream_type="fan",
        load_stream=read,
        loaded=(stale, position),
    )
    assert reads == [1]  # the stale copy conflicted once, then the stream was read
    assert (handled.aggregate.value_cents, handled.aggregate.notes) == (5, "hi")


async def test_a_message_id_reused_is_refused_at_once() -> None:
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(1)
        raise MessageIdReused("message id m-1 was already used")

    with pytest.raises(MessageIdReused):
        await retry_on_conflict(attempt)
    assert calls == [1]


async def test_before_retry_runs_between_tries_only() -> None:
    calls, attempt = losing(2)
    heard: list[str] = []

    async def before_retry(error: ConcurrencyError) -> None:
        heard.append(str(error))

    assert await retry_on_conflict(attempt, tries=3, before_retry=before_retry) == "saved"
    assert heard == ["another writer got in first"] * 2
    assert len(calls) == 3
