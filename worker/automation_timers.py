"""The automation worker's second duty: the durable timers. Runs whose next step is due are
claimed from the sequences view with FOR UPDATE SKIP LOCKED (several workers share the work,
none claims a row another holds) and decided on their streams: each account's due steps in one
append (application.enrolment_batch), what that leaves one by one, a few at once
(application.enrolments.send_due_step). A step and its message commit together, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from adapters import metrics
from adapters.bootstrap import Container
from application.enrolment_batch import send_due_steps
from application.enrolments import RunEnded, StepQueued, send_due_step
from application.sequence_queries import DueEnrolment
from worker.automation_triggers import VIEW

log = structlog.get_logger(__name__)

ACTED_SECONDS = 30.0
FIRING_LANES = 4  # steps queued one by one at once: with the claim's, 5 of the pool's 10


class TimerFirer:
    def __init__(self, container: Container, now: Callable[[], datetime], timer_batch: int) -> None:
        self.c = container
        self.now = now
        self.timer_batch = timer_batch
        # Timer rows this worker moved on, at the version the view showed, and when: left out
        # of its claims until the view has applied what was appended (else claimed again, and
        # loaded, for nothing, filling the batch). ``_appended``: the position of each batch's
        # append and its rows, forgotten once the view has it. The slow path's rows (few) are
        # forgotten after ACTED_SECONDS: a view that far behind costs a reload, never a send.
        self._acted: dict[str, tuple[int, float]] = {}
        self._appended: list[tuple[int, list[str]]] = []

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
                    streams,
                    tenant,
                    now,
                    store=self.c.events,
                    ids=self.c.ids,
                    pricing=self.c.pricing,
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
            run.stream_id,
            run.tenant,
            now,
            store=self.c.events,
            ids=self.c.ids,
            pricing=self.c.pricing,
        )
        if isinstance(outcome, StepQueued):
            metrics.automation_step_sent(run.tenant, outcome.queue)
            log.info("sequence step queued", run=run.stream_id, step=outcome.step)
        elif isinstance(outcome, RunEnded) and outcome.reason != "completed":
            metrics.automation_exited(run.tenant, outcome.reason)
        return outcome
