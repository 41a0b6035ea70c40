"""The automation worker (`crm worker automations`): the process manager of sequences.

Each round it follows the log (worker.automation_triggers: enrolments and exits), fires the
due timers (worker.automation_timers: each step queued once), and, once a minute, scans for the
triggers no event carries (application.automation_scan: inactive, noReply, atRisk). Several
may run at once; a killed one loses nothing. The clock is injected (``now``): tests move
time, never sleep.
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
from application.enrolments import load_sequence_of
from worker.automation_timers import TimerFirer
from worker.automation_triggers import NAME, TriggerFollower

log = structlog.get_logger(__name__)

__all__ = ["NAME", "AutomationWorker", "run_automation_worker"]
SCAN_SECONDS = 60.0  # days, hours, a daily retrain: a minute is soon enough
POLL_SECONDS = 0.5  # timers are looked at least this often: a due step goes out within ~1 s


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
        self.poll_interval = poll_interval
        self.scan_interval = scan_interval
        self.triggers = TriggerFollower(container, now, batch_size)
        self.timers = TimerFirer(container, now, timer_batch)
        self._silent = PostgresSilentFans(container.pool)
        self._next_scan = 0.0

    async def follow_once(self) -> int:
        """React to the next batch of the log; returns how many events it read."""
        return await self.triggers.follow_once()

    async def fire_due_once(self) -> int:
        """Queue the due steps of one claim of runs; returns how many it acted on."""
        return await self.timers.fire_due_once()

    async def scan_once(self) -> int:
        """Enrol a page of fans per inactive / noReply / atRisk sequence; how many it enrolled."""
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


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
