"""Import batches against an in-memory import store: which rows insert, update, skip or fail,
which fans own index entries, and a batch that loses a race re-runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from application.context import CommandContext
from application.errors import ConcurrencyError
from application.import_batch import import_batch, match_keys
from application.import_pipeline import run_import
from application.imports import (
    Applied,
    FanRow,
    Indexed,
    Row,
    RowError,
    StartImport,
    start_import,
)
from application.ports import StreamWrite
from domain.errors import IllegalState
from domain.fan import Fan
from domain.import_job import ImportJob
from tests.support.fakes import InMemoryEventStore

CTX = CommandContext(tenant="t1", actor="test", correlation_id="c1")


class InMemoryImports:
    """The import store's unit of work over the in-memory event store. Like Postgres's unique
    index, a claim made by a transaction not yet committed makes every other claim of that key
    lose, while ``find`` sees committed entries only. ``remembers=False`` plays a store whose
    entries never remember a row (every fan is loaded): outcomes must be the same."""

    def __init__(self, events: InMemoryEventStore, *, remembers: bool = True) -> None:
        self.events = events
        self.remembers = remembers
        self.index: dict[str, int] = {}
        # key -> (digest of the row last applied, the fan's version after it)
        self.seen: dict[str, tuple[bytes | None, int | None]] = {}
        self.pending: set[str] = set()
        self.next_id = 100
        # Keys another importer claims just before this one (the race).
        self.stolen: dict[str, int] = {}
        self.batches = 0
        self.loaded = 0

    async def index_existing_fans(self, tenant: str) -> None:
        pass

    async def row_digests(self, tenant: str) -> Callable[[Row], bytes]:
        return _digest

    @asynccontextmanager
    async def batch(self, tenant: str) -> AsyncIterator[Any]:
        self.batches += 1
        unit = _Unit(self)
        try:
            yield unit
            await self.events.append_all(unit.writes, metadata=CTX.metadata())
            for key, fan_id in unit.released.items():
                if self.index.get(key) == fan_id:
                    del self.index[key]
            for key, entry in unit.claims.items():
                self.index[key] = entry.fan_id
                self.seen[key] = (entry.row_digest, entry.version)
            for entry in unit.remembered:
                for key, fan_id in self.index.items():
                    if fan_id == entry.fan_id:
                        self.seen[key] = (entry.row_digest, entry.version)
        finally:
            self.pending -= set(unit.claims)


def _digest(row: Row) -> bytes:
    return msgspec.msgpack.encode(msgspec.structs.astuple(row)[1:])


class _Unit:
    def __init__(self, store: InMemoryImports) -> None:
        self.store = store
        self.claims: dict[str, Applied] = {}
        self.remembered: list[Applied] = []
        self.released: dict[str, int] = {}
        self.writes: list[StreamWrite] = []

    async def find(self, keys: Sequence[str]) -> dict[str, Indexed]:
        found = {}
        for key in keys:
            if key in self.store.index:
                fan_id = self.store.index[key]
                digest, version = self.store.seen.get(key, (None, None))
                now = len(await self.store.events.load(f"fan-{fan_id}"))
                if not self.store.remembers:
                    digest = None
                found[key] = Indexed(fan_id, digest, version == now)
        return found

    def row_digest(self, row: Row) -> bytes:
        return _digest(row)

    async def claim(self, claims: dict[str, Applied], *, exclusive: bool) -> None:
        self.store.index.update(self.store.stolen)
        self.store.stolen = {}
        taken = self.store.index.keys() | self.store.pending
        if exclusive and taken & claims.keys():
            raise ConcurrencyError("another import holds some of these keys")
        won = {key: entry for key, entry in claims.items() if key not in taken}
        self.store.pending |= won.keys()
        self.claims.update(won)

    async def remember(self, applied: Sequence[Applied]) -> None:
        self.remembered += applied

    async def release(self, keys: dict[str, int]) -> None:
        self.released.update(keys)

    async def new_fan_ids(self, count: int) -> list[int]:
        self.store.next_id += count
        return list(range(self.store.next_id - count, self.store.next_id))

    async def load_fans(self, fan_ids: Sequence[int]) -> dict[int, Fan]:
        fans = {}
        for fan_id in fan_ids:
            self.store.loaded += 1
            fan: Any = None
            for recorded in await self.store.events.load(f"fan-{fan_id}"):
                fan = recorded.event.mutate(fan)
            if fan is not None:
                fans[fan_id] = fan
        return fans

    async def append(self, writes: Sequence[StreamWrite], ctx: CommandContext) -> int:
        self.writes = list(writes)
        return 0


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def new_job(events: InMemoryEventStore) -> ImportJob:
    return await start_import(StartImport(job_id="j1", file_name="f.csv"), CTX, store=events)


def test_rows_insert_update_skip_or_fail_and_only_created_fans_own_index_entries() -> None:
    async def scenario() -> tuple[ImportJob, InMemoryImports]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        job = await new_job(events)
        rows = [
            FanRow(row=2, handle="ann", value_cents=5),
            FanRow(row=3, handle="bad", email="nope"),
            FanRow(row=4, handle="@Ann", value_cents=5),
            FanRow(row=5, handle="@Ann", value_cents=5),
            RowError(6, "value: 'x' is not an amount of money"),
            FanRow(row=7, name="no key"),
        ]
        job = await import_batch(rows, job, CTX, events=events, imports=imports)
        return job, imports

    job, imports = run(scenario())

    assert (job.inserted, job.updated, job.skipped, job.last_row) == (1, 1, 1, 7)
    assert job.errors == [
        (3, "email: is not a valid email address"),
        (6, "value: 'x' is not an amount of money"),
        (7, "handle: a row needs a handle or a platform id"),
    ]
    assert set(imports.index) == {"onlyfans:handle:ann"}


def test_a_batch_that_loses_a_claim_re_runs_and_updates_the_winners_fan() -> None:
    async def scenario() -> tuple[ImportJob, InMemoryImports, InMemoryEventStore]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        rival = Fan.register(fan_id=7, tenant="t1", handle="ann")
        await events.append(
            "fan-7", "fan", rival.collect_events(), expected_version=0, metadata=CTX.metadata()
        )
        imports.stolen = {"onlyfans:handle:ann": 7}
        job = await new_job(events)
        rows = [FanRow(row=2, handle="ann", name="Ann")]
        job = await import_batch(rows, job, CTX, events=events, imports=imports)
        return job, imports, events

    job, imports, events = run(scenario())

    assert imports.batches == 2
    assert (job.inserted, job.updated) == (0, 1)
    assert [r.event_type for r in events.log if r.stream_id.startswith("fan-")] == [
        "FanCreated",
        "FanUpdated",
    ]


def test_match_keys_prefer_the_platform_id_and_ignore_case_and_at_signs() -> None:
    assert match_keys(FanRow(row=2, handle=" @Ann ", platform_id="42", platform="fansly")) == [
        "fansly:id:42",
        "fansly:handle:ann",
    ]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ann", "@Ann", "bob", "BOB", "cid", "bad handle", ""]),
            st.sampled_from([None, 0, 5, -1]),
            st.sampled_from([None, "a@example.com", "nope"]),
        ),
        max_size=25,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_importing_any_file_twice_creates_each_fan_once_and_nothing_the_second_time(
    cells: list[tuple[str, int | None, str | None]], batch_size: int
) -> None:
    rows = [
        FanRow(row=n + 2, handle=handle or None, value_cents=value, email=email)
        for n, (handle, value, email) in enumerate(cells)
    ]

    async def scenario() -> tuple[ImportJob, ImportJob, InMemoryEventStore]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)

        async def once(job_id: str) -> ImportJob:
            job = await start_import(StartImport(job_id=job_id, file_name="f"), CTX, store=events)

            async def source() -> AsyncIterator[Row]:
                for row in rows:
                    yield row

            return await run_import(
                source(), job, CTX, events=events, imports=imports, batch_size=batch_size
            )

        return await once("first"), await once("second"), events

    first, second, events = run(scenario())

    created = [r for r in events.log if r.event_type == "FanCreated"]
    handles = {r.event.handle.lstrip("@").lower() for r in created}
    assert len(created) == len(handles) == first.inserted
    assert second.inserted == 0
    assert first.total_rows == second.total_rows == len(rows)
    assert second.error_count == first.error_count


async def import_rows(
    events: InMemoryEventStore, imports: InMemoryImports, rows: list[Row], job_id: str, size: int
) -> ImportJob:
    job = await start_import(StartImport(job_id=job_id, file_name="f"), CTX, store=events)

    async def source() -> AsyncIterator[Row]:
        for row in rows:
            yield row

    return await run_import(source(), job, CTX, events=events, imports=imports, batch_size=size)


def test_an_unchanged_file_imported_again_loads_no_fan_and_a_changed_fan_is_loaded() -> None:
    rows: list[Row] = [FanRow(row=2, handle="ann", value_cents=5), FanRow(row=3, handle="bob")]

    async def scenario() -> tuple[list[ImportJob], list[int]]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        jobs, loads = [], []
        for job_id in ("first", "again"):
            jobs.append(await import_rows(events, imports, rows, job_id, 10))
            loads.append(imports.loaded)
        # Ann changes outside the import: her row would now change her back.
        fan: Any = None
        for recorded in await events.load(f"fan-{imports.index['onlyfans:handle:ann']}"):
            fan = recorded.event.mutate(fan)
        fan.update(value_cents=9)
        await events.append(
            fan.id, "fan", fan.collect_events(), expected_version=1, metadata=CTX.metadata()
        )
        jobs.append(await import_rows(events, imports, rows, "after a change", 10))
        loads.append(imports.loaded)
        return jobs, loads

    jobs, loads = run(scenario())

    assert [(j.inserted, j.updated, j.skipped) for j in jobs] == [(2, 0, 0), (0, 0, 2), (0, 1, 1)]
    assert loads == [0, 0, 1]


CELLS = st.lists(
    st.tuples(
        st.sampled_from(["ann", "@Ann", "bob", "BOB", "cid", "bad handle", ""]),
        st.sampled_from([None, 0, 5, -1]),
        st.sampled_from([None, "a@example.com", "nope"]),
        st.sampled_from([None, "Ann", "Bob"]),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(CELLS, min_size=2, max_size=4), st.integers(min_value=1, max_value=5))
def test_skipping_fans_an_import_left_unchanged_never_changes_an_outcome(
    files: list[list[tuple[str, int | None, str | None, str | None]]], batch_size: int
) -> None:
    """Whatever the files, in whatever order: the same summaries and the same fan events
    with the shortcut as when every fan is loaded and asked."""

    async def history(remembers: bool) -> tuple[list[Any], list[Any]]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events, remembers=remembers)
        summaries = []
        for number, cells in enumerate(files):
            rows: list[Row] = [
                FanRow(row=n + 2, handle=handle or None, value_cents=value, email=email, name=name)
                for n, (handle, value, email, name) in enumerate(cells)
            ]
            job = await import_rows(events, imports, rows, f"job-{number}", batch_size)
            summaries.append((job.inserted, job.updated, job.skipped, job.errors))
        fan_events = [
            (r.stream_id, r.version, r.event_type, _values(r.event))
            for r in events.log
            if r.stream_id.startswith("fan-")
        ]
        return summaries, fan_events

    assert run(history(remembers=True)) == run(history(remembers=False))


def _values(event: Any) -> dict[str, Any]:
    fields = ("handle", "name", "email", "value_cents", "tags", "notes")
    return {field: getattr(event, field, None) for field in fields}


async def fan_states(events: InMemoryEventStore) -> list[Any]:
    """Each fan's last state: what the rows made of it (ids aside: a batch may spend them
    differently)."""
    fans: dict[str, Any] = {}
    for recorded in events.log:
        if recorded.stream_id.startswith("fan-"):
            fans[recorded.stream_id] = recorded.event.mutate(fans.get(recorded.stream_id))
    return sorted((fan.handle, fan.name, fan.email, fan.value_cents) for fan in fans.values())


def test_a_row_changing_a_fan_back_in_the_next_batch_sees_the_batch_before_it() -> None:
    async def scenario() -> tuple[ImportJob, list[Any]]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        await import_rows(events, imports, [FanRow(row=2, handle="ann", value_cents=0)], "a", 1)
        # Batch 1 sets 5; batch 2 (decided while batch 1 still commits) sets 0 back.
        rows: list[Row] = [
            FanRow(row=2, handle="ann", value_cents=5),
            FanRow(row=3, handle="ann", value_cents=0),
        ]
        job = await import_rows(events, imports, rows, "b", 1)
        return job, await fan_states(events)

    job, fans = run(scenario())

    assert (job.updated, job.skipped) == (2, 0)
    assert fans == [("ann", None, None, 0)]


@settings(max_examples=60, deadline=None)
@given(st.lists(CELLS, min_size=1, max_size=3), st.integers(min_value=1, max_value=5))
def test_batches_end_with_the_fans_that_one_row_at_a_time_makes(
    files: list[list[tuple[str, int | None, str | None, str | None]]], batch_size: int
) -> None:
    """The pipeline decides a batch while the one before commits: the outcome is still that
    of applying the rows in file order, each committed before the next is decided."""

    async def outcome(one_by_one: bool) -> tuple[list[Any], list[Any]]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        summaries = []
        for number, cells in enumerate(files):
            rows: list[Row] = [
                FanRow(row=n + 2, handle=handle or None, value_cents=value, email=email, name=name)
                for n, (handle, value, email, name) in enumerate(cells)
            ]
            if one_by_one:
                job = await start_import(
                    StartImport(job_id=f"job-{number}", file_name="f"), CTX, store=events
                )
                for row in rows:
                    job = await import_batch([row], job, CTX, events=events, imports=imports)
            else:
                job = await import_rows(events, imports, rows, f"job-{number}", batch_size)
            summaries.append((job.inserted, job.updated, job.skipped, job.errors))
        return summaries, await fan_states(events)

    assert run(outcome(one_by_one=False)) == run(outcome(one_by_one=True))


def test_only_the_keys_of_rows_applied_to_a_fan_are_indexed_to_it() -> None:
    async def scenario() -> InMemoryImports:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        rows: list[Row] = [
            FanRow(row=2, platform_id="1", handle="a", email="nope"),
            FanRow(row=3, handle="a"),
        ]
        await import_rows(events, imports, rows, "j", 10)
        return imports

    imports = run(scenario())

    # Row 2 broke a rule: the fan row 3 created is not the fan of platform id 1.
    assert set(imports.index) == {"onlyfans:handle:a"}


def test_a_resumed_job_refuses_a_file_whose_row_differs_where_it_stopped() -> None:
    rows: list[Row] = [FanRow(row=n, handle=f"fan{n}") for n in range(2, 8)]

    async def scenario() -> tuple[list[str], ImportJob]:
        events = InMemoryEventStore()
        imports = InMemoryImports(events)
        job = await new_job(events)
        job = await import_batch(rows[:3], job, CTX, events=events, imports=imports)  # 2-4
        refusals = []
        other_files: list[list[Row]] = [
            [*rows[:2], FanRow(row=4, handle="someone_else"), *rows[3:]],
            rows[:2],  # ends before row 4
            [*rows[:2], RowError(4, "value: 'x' is not an amount of money"), *rows[3:]],
        ]
        for other in other_files:
            try:
                await run_import(_aiter(other), job, CTX, events=events, imports=imports)
            except IllegalState as error:
                refusals.append(str(error))
        job = await run_import(_aiter(rows), job, CTX, events=events, imports=imports)
        return refusals, job

    refusals, job = run(scenario())

    assert len(refusals) == 3
    assert all("row 4 is not the row the import committed there" in r for r in refusals)
    assert (job.inserted, job.last_row) == (6, 7)


async def _aiter(rows: list[Row]) -> AsyncIterator[Row]:
    for row in rows:
        yield row
