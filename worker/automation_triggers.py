"""The automation worker's first duty: follow the log, as a projector does, with a checkpoint
of its own ("automations"), enrolling fans on the events that start sequences and ending the
runs that the events ending them name (application.automation_signals says which).

What it appends is keyed so that a batch done again after a crash changes nothing (a run's
stream and its trigger, an exit of a run that has ended), and the checkpoint moves only after
the batch's reactions are committed. It waits for the sequences view to hold everything up to
what it reacts to, so that the runs a reply must end are all in the view it asks; the runs it
started itself and the view may not show yet it remembers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from adapters import metrics
from adapters.bootstrap import Container
from application.automation_signals import (
    RELEVANT,
    Signal,
    import_transactions,
    signals_of,
)
from application.enrolments import enrol, exit_run, load_sequence_created
from application.ports import Checkpoint, RecordedEvent
from domain.fan import Fan
from domain.sequence import Sequence

log = structlog.get_logger(__name__)

NAME = "automations"
VIEW = "sequences"
VIEW_WAIT_SECONDS = 5.0
RECENT_RUNS = 100_000
# Triggers that need a fan's fields before an update to see what changed.
_FAN_FIELDS = frozenset({"tagAdded", "subscribed"})


class TriggerFollower:
    def __init__(self, container: Container, now: Callable[[], datetime], batch_size: int) -> None:
        self.c = container
        self.now = now
        self.batch_size = batch_size
        # Import transactions seen lately: a transaction cut by a batch boundary keeps its
        # fans "imported" in the next batch.
        self._imports: set[int] = set()
        # Runs this worker started that the view may not show yet: a reply in a later batch
        # must still find them (an exit decides on the log, so a spare candidate is harmless).
        self._recent: dict[tuple[str, int], list[str]] = {}
        # Where the view must have got to before the first batch: the log's head at start, so
        # that the runs started before a restart are in it (later ones are in ``_recent``).
        self._must_reach: Checkpoint | None = None

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


def _key(signal: Signal) -> tuple[str, int]:
    return signal.tenant, signal.fan_id


def _fan_of(stream_id: str) -> int:
    return int(stream_id.removeprefix("fan-")) if stream_id.startswith("fan-") else 0
