"""Simulated account histories for benchmarks and model evaluation: fans with hidden traits
(adapters/onlyfans/fan_model.py) living with a simulated creator (timeline.py), written into
fancrm's event store through the application's own command handlers, each event dated at its
simulated moment (writer.py, dated_store.py). ``write_history`` answers the truth the log
does not hold: each fan's traits and when it churned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from adapters.bootstrap import Container
from adapters.onlyfans.fan_model import FanTraits
from adapters.simulated_history.bulk import BulkWriter
from adapters.simulated_history.timeline import live
from adapters.simulated_history.writer import HistoryWriter, moment, platform_id

__all__ = ["FanTruth", "HistoryTruth", "write_history"]


@dataclass(frozen=True, slots=True)
class FanTruth:
    fan_id: int  # the application's id
    platform_id: str
    traits: FanTraits
    attention: float  # the simulated creator's chance of answering this fan
    joined_at: datetime
    churned_at: datetime | None
    churned_on: date | None  # the day it churned, None if it had not by ``end``
    creator_messages: int
    fan_messages: int


@dataclass(frozen=True, slots=True)
class HistoryTruth:
    account_id: str
    start: datetime
    end: datetime
    fans: dict[int, FanTruth]  # by fan id
    events_written: int  # events the history appended (the import job's own included)

    def churned_share(self) -> float:
        return sum(f.churned_at is not None for f in self.fans.values()) / max(1, len(self.fans))


async def write_history(
    ctx: Container,
    *,
    account_id: str,
    fans: int,
    days: int,
    seed: int,
    end: datetime,
    through: Literal["aggregates", "handlers"] = "aggregates",
    concurrency: int | None = None,
) -> HistoryTruth:
    """Write ``fans`` fans' last ``days`` days up to ``end`` for account ``account_id``.
    The same seed and account give the same lives (the application's ids may differ).

    ``through="handlers"`` runs every action through its application handler (writer.py):
    the reference, and slow. ``"aggregates"`` (bulk.py) lets the same aggregates decide and
    appends a day at a time: the same events, tested so, for benchmarks of 20,000 fans.
    ``concurrency``: fans at once (handlers, 16) or appends at once (aggregates, 4)."""
    start = end - timedelta(days=days)
    lives = [live(seed, account_id, index, start.timestamp(), days) for index in range(fans)]
    writer: HistoryWriter | BulkWriter
    if through == "handlers":
        writer = HistoryWriter(ctx, account_id, concurrency or 16)
    else:
        writer = BulkWriter(ctx, account_id, concurrency or 4)
    written = await writer.write(lives, start.timestamp())
    truth: dict[int, FanTruth] = {}
    for life in lives:
        fan = written[life.index]
        assert fan.fan_id is not None
        churned = None if life.churned_at is None else moment(life.churned_at)
        truth[fan.fan_id] = FanTruth(
            fan_id=fan.fan_id,
            platform_id=platform_id(life.index),
            traits=life.traits,
            attention=life.attention,
            joined_at=moment(life.joined_at),
            churned_at=churned,
            churned_on=None if churned is None else churned.date(),
            creator_messages=sum(a.kind == "creator" for a in life.actions),
            fan_messages=sum(a.kind == "fan" for a in life.actions),
        )
    return HistoryTruth(account_id, start, end, truth, writer.events_written)
