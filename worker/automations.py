"""The automation worker (`crm worker automations`): the process manager of sequences.

Each round it does two things:

- follows the log, as a projector does, with a checkpoint of its own ("automations"): the
  events that start sequences enrol fans (application.enrolments.enrol), those that end runs
  exit them. What it appends is keyed so that a batch done again after a crash changes
  nothing (an enrolment's stream and its trigger, an exit of a run that has ended), and the
  checkpoint moves only after the batch's reactions are committed;
- fires due timers: runs whose next step is due, claimed from the timers read model with
  FOR UPDATE SKIP LOCKED (several workers share the work), each step queued in one append
  with its ``StepSent`` (application.enrolments.send_due_step).

It waits for the sequences view to hold everything up to what it reacts to (the batch, and
its own enrolments), so that the runs a reply must end are all in the view it asks. The
clock is injected (``now``): tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog

from adapters import metrics
from adapters.bootstrap import Container
from adapters.postgres.automation_scans import PostgresSilentFans
from application.automation_scan import scan_sequence
from application.automation_signals import (
    RELEVANT,
    Signal,
    import_transactions,
    signals_of,
)
from application.enrolment_batch import send_due_steps
from application.enrolments import (
    RunEnded,
    StepQueued,
    enrol,
    exit_run,
    load_sequence_created,
    load_sequence_of,
    send_due_step,
)
from application.ports import Checkpoint, RecordedEvent
from application.sequence_queries import DueEnrolment
from domain.fan import Fan
from domain.sequence import Sequence

log = structlog.get_logger(__name__)

NAME = "automations"
VIEW = "sequences"
SCAN_SECONDS = 60.0  # inactive is counted in days, noReply in hours: a minute is soon enough
POLL_SECONDS = 0.5  # timers are looked at least this often: a due step goes out within ~1 s
VIEW_WAIT_SECONDS = 5.0
RECENT_RUNS = 100_000
ACTED_SECONDS = 30.0
FIRING_LANES = 4  # steps queued at once: with the claim's, 5 of the pool's 10 connections
# Triggers that need a fan's fields before an update to see what changed.
_FAN_FIELDS = frozenset({"tagAdded", "subscribed"})


def utc_now() -> datetime:
    return datetime.now(UTC)


class AutomationWorker:
    def __init__(
        self,
        container: Container,
        *,
        now: Callable[[], datetime] = utc_now,
        batch_size: int = 500,
        timer_batch: int = 200,
        poll_interval: float = POLL_SECONDS,
        scan_interval: float = SCAN_SECONDS,
    ) -> None:
        self.c = container
        self.now = now
        self.batch_size = batch_size
        self.timer_batch = timer_batch
        self.poll_interval = poll_interval
        self.scan_interval = scan_interval
        self._silent = PostgresSilentFans(container.pool)
        self._next_scan = 0.0
        # Import transactions seen lately: a transaction cut by a batch boundary keeps its
        # fans "imported" in the next batch.
        self._imports: set[int] = set()
        # Runs this worker started that the view may not show yet: a reply in a later batch
        # must still find them (an exit decides on the log, so a spare candidate is harmless).
        self._recent: dict[tuple[str, int], list[str]] = {}
        # Where the view must have got to before the first batch: the log's head at start, so
        # that the runs started before a restart are in it (later ones are in ``_recent``).
        self._must_reach: Checkpoint | None = None
        # Timer rows this worker moved on, at the version the view showed, and when: left out
        # of its claims until the view has applied what was appended (else claimed again, and
        # loaded, for nothing, filling the batch). ``_appended``: the position of each batch's
        # append and its rows, forgotten once the view has it. The slow path's rows (few) are
        # forgotten after ACTED_SECONDS: a view that far behind costs a reload, never a send.
        self._acted: dict[str, tuple[int, float]] = {}
        self._appended: list[tuple[int, list[str]]] = []

    # -- following the log ----------------------------------------------------------------

    async def follow_once(self) -> int:
        """React to the next batch of the log; returns how many events it read."""
        ps = self.c.projection_store
        if self._must_reach is None:
            self._must_reach = await self.c.events.head()
        after = await ps.checkpoint(NAME)
        batch = await ps.read_all(after, self.batch_size)
        if not batch:
            return 0
        last = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        if not await self._view_reached(max(last, self._must_reach)):
            return 0
        self._imports |= import_transactions(batch)
        await self._react([r for r in batch if type(r.event) in RELEVANT])
        async with ps.transaction("public") as sql:
            if await ps.claim(sql, NAME) == after:
                await ps.save_checkpoint(sql, NAME, last)
        if len(self._imports) > 1_000:
            self._imports = import_transactions(batch)
        return len(batch)

    async def _react(self, events: list[RecordedEvent]) -> None:
        if not events:
            return
        tenants = sorted({r.metadata.tenant for r in events})
        triggers = await self.c.sequences.live_triggers(tenants)
        fans: dict[str, set[int]] = {}
        for r in events:
            fan_id = getattr(r.event, "fan_id", None) or _fan_of(r.stream_id)
            fans.setdefault(r.metadata.tenant, set()).add(fan_id)
        runs = {t: await self.c.sequences.active_runs(t, sorted(ids)) for t, ids in fans.items()}
        sequences: dict[int, tuple[Sequence, Checkpoint]] = {}

        async def previous_fan(recorded: RecordedEvent) -> Fan | None:
            tenant, fan_id = recorded.metadata.tenant, _fan_of(recorded.stream_id)
            listened = fan_id in runs.get(tenant, {}) or (tenant, fan_id) in self._recent
            if not (listened or any(t["type"] in _FAN_FIELDS for _, t in triggers.get(tenant, []))):
                return None  # nothing listens to this fan's tags or subscription
            stream = await self.c.events.load(
                recorded.stream_id, up_to_version=recorded.version - 1
            )
            fan: Any = None
            for item in stream:
                fan = item.event.mutate(fan)
            return fan  # type: ignore[no-any-return]

        for recorded in events:
            found = await signals_of(recorded, imported=self._imports, previous_fan=previous_fan)
            for signal in found:
                if signal.kind == "exit":
                    known = runs.get(signal.tenant, {}).get(signal.fan_id, [])
                    await self._exit(signal, [*known, *self._recent.get(_key(signal), [])])
                else:
                    await self._enter(signal, triggers.get(signal.tenant, []), sequences)

    async def _enter(
        self,
        signal: Signal,
        triggers: list[tuple[int, Any]],
        cache: dict[int, tuple[Sequence, Checkpoint]],
    ) -> None:
        for sequence_id, trigger in triggers:
            if trigger["type"] != signal.what or trigger.get("tag") != signal.tag:
                continue
            if sequence_id not in cache:
                cache[sequence_id] = await load_sequence_created(
                    self.c.events, sequence_id, signal.tenant
                )
            sequence, created = cache[sequence_id]
            if sequence.status != "active" or created > signal.at:
                continue
            enrolment = await enrol(
                sequence, signal.fan_id, signal.source, self.now(), store=self.c.events
            )
            if enrolment is not None:
                self._remember(signal, enrolment.id)
                metrics.automation_enrolled(signal.tenant)
                log.info("fan enrolled", run=enrolment.id, trigger=signal.what)

    async def _exit(self, signal: Signal, streams: list[str]) -> None:
        for stream_id in dict.fromkeys(streams):
            ended = await exit_run(
                stream_id,
                signal.tenant,
                signal.what,
                self.now(),
                store=self.c.events,
                tag=signal.tag,
            )
            if ended is not None:
                metrics.automation_exited(signal.tenant, ended.reason)
                log.info("run exited", run=stream_id, reason=ended.reason)

    def _remember(self, signal: Signal, stream_id: str) -> None:
        if sum(len(v) for v in self._recent.values()) >= RECENT_RUNS:
            self._recent.clear()
        self._recent.setdefault(_key(signal), []).append(stream_id)

    async def _view_reached(self, target: Checkpoint) -> bool:
        deadline = time.monotonic() + VIEW_WAIT_SECONDS
        ps = self.c.projection_store
        while await ps.checkpoint(VIEW) < target:
            if time.monotonic() >= deadline:
                log.info("waiting for the sequences view", target=target.position)
                return False
            await asyncio.sleep(0.05)
        return True

    # -- time-based triggers ---------------------------------------------------------------

    async def scan_once(self) -> int:
        """Enrol a page of silent fans per inactive / noReply sequence; how many it enrolled."""
        started = 0
        for sequence_id, tenant in await self._silent.scanned_sequences():
            sequence = await load_sequence_of(self.c.events, sequence_id, tenant)
            runs = await scan_sequence(sequence, self.now(), store=self.c.events, fans=self._silent)
            for _ in runs:
                metrics.automation_enrolled(tenant)
            started += len(runs)
        return started

    async def _scan_when_due(self) -> int:
        if time.monotonic() < self._next_scan:
            return 0
        self._next_scan = time.monotonic() + self.scan_interval
        return await self.scan_once()

    # -- timers ---------------------------------------------------------------------------

    async def fire_due_once(self) -> int:
        """Queue the due steps of one claim of runs; returns how many it acted on.

        Each account's runs go in one append (application.enrolment_batch); those it leaves,
        or all of them if that append met a conflict, one by one, a few at once."""
        now = self.now()
        await self._forget_applied()
        skip = [(stream, version) for stream, (version, _) in self._acted.items()]
        async with self.c.sequences.claim_due(now, self.timer_batch, skip) as due:
            versions = {run.stream_id: run.version for run in due}
            tenants: dict[str, list[str]] = {}
            for run in due:
                tenants.setdefault(run.tenant, []).append(run.stream_id)
            rest: list[DueEnrolment] = []
            acted: list[str] = []
            for tenant, streams in tenants.items():
                batched = await send_due_steps(
                    streams, tenant, now, store=self.c.events, ids=self.c.ids
                )
                for queued in batched.queued:
                    metrics.automation_step_sent(tenant, queued.queue)
                if batched.position is not None:
                    self._appended.append(
                        (batched.position, [queued.stream_id for queued in batched.queued])
                    )
                acted += [queued.stream_id for queued in batched.queued]
                rest += [DueEnrolment(s, tenant, versions[s]) for s in batched.rest]
            acted += await self._one_by_one(rest, now)
        for stream_id in acted:
            self._acted[stream_id] = (versions[stream_id], time.monotonic())
        return len(acted)

    async def _forget_applied(self) -> None:
        while self._appended and await self.c.projection_store.applied(VIEW, self._appended[0][0]):
            for stream_id in self._appended.pop(0)[1]:
                self._acted.pop(stream_id, None)
        recent = time.monotonic() - ACTED_SECONDS
        self._acted = {s: acted for s, acted in self._acted.items() if acted[1] >= recent}
        if not self._acted:
            self._appended.clear()

    async def _one_by_one(self, runs: list[DueEnrolment], now: datetime) -> list[str]:
        # A few at once: each step is some round trips, most of it waiting on Postgres.
        lanes = asyncio.Semaphore(FIRING_LANES)

        async def fire(run: DueEnrolment) -> StepQueued | RunEnded | None:
            async with lanes:
                return await self._fire(run, now)

        outcomes = await asyncio.gather(*(fire(run) for run in runs), return_exceptions=True)
        acted = []
        for run, outcome in zip(runs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome  # the others' outcomes are committed; the round reports this one
            if outcome is not None:  # else the row stands as the log has it (paused, lagging)
                acted.append(run.stream_id)
        return acted

    async def _fire(self, run: DueEnrolment, now: datetime) -> StepQueued | RunEnded | None:
        outcome = await send_due_step(
            run.stream_id, run.tenant, now, store=self.c.events, ids=self.c.ids
        )
        if isinstance(outcome, StepQueued):
            metrics.automation_step_sent(run.tenant, outcome.queue)
            log.info("sequence step queued", run=run.stream_id, step=outcome.step)
        elif isinstance(outcome, RunEnded) and outcome.reason != "completed":
            metrics.automation_exited(run.tenant, outcome.reason)
        return outcome

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.poll_interval
        await self.c.projection_store.listen()
        while not stop.is_set():
            try:
                followed = await self.follow_once()
                fired = await self.fire_due_once()
                scanned = await self._scan_when_due()
                backoff = self.poll_interval
                if followed or fired or scanned:
                    continue
                await _first_of(
                    self.c.projection_store.wait_for_events(self.poll_interval), stop.wait()
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # an outage or a bug: keep going, visibly, with backoff
                log.exception("automation round failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 30.0)


async def run_automation_worker(container: Container, stop: asyncio.Event) -> None:
    log.info("automation worker started")
    await AutomationWorker(container).run(stop)


def _key(signal: Signal) -> tuple[str, int]:
    return signal.tenant, signal.fan_id


def _fan_of(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-")) if stream_id.startswith("fan-") else 0


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
