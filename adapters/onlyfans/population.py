"""The simulator's fans as fan_model draws them (opt-in: ``SimulatorConfig.population``).

Each (account, fan) the simulator delivers to gets the traits fan_model gives (seed, account,
fan id), a mood and a generator of its own, so what one fan does never depends on the order
other fans' messages arrive in. On each delivery, the fan first lives the time since its last
one on the simulator's clock (scaled by ``time_scale``: 1,440 makes a real minute a simulated
day), and may churn on the way; then it answers by its habits: it reads, buys a priced message
with its demand curve's probability at that price, and replies. A reply leaves it waiting for
the creator's next free message; a churned fan answers nothing ever again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from adapters.onlyfans.fan_model import (
    VALUE_SCALE_CENTS,
    FanMood,
    FanTraits,
    fan_rng,
    respond,
    traits,
)


class PopulationConfig(msgspec.Struct, frozen=True, kw_only=True):
    seed: int = 0
    value_scale_cents: float = VALUE_SCALE_CENTS  # the demand curves' scale (fan_model)
    time_scale: float = 1.0  # simulated seconds per second of the simulator's clock

    def __post_init__(self) -> None:
        if not self.value_scale_cents > 0 or not self.time_scale > 0:
            raise ValueError("population: value_scale_cents and time_scale must be > 0")


class Outcome(NamedTuple):
    read: bool
    bought: bool
    replied: bool


@dataclass(slots=True)
class SimulatedFan:
    traits: FanTraits
    mood: FanMood
    rng: random.Random


class Population:
    """Handlers call ``respond`` on the server's loop; tests read ``fan()`` from theirs."""

    def __init__(self, config: PopulationConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._epoch = clock()
        self._lock = threading.Lock()
        self._fans: dict[tuple[str, str], SimulatedFan] = {}

    def now(self) -> float:
        """Simulated seconds since the simulator started."""
        return (self._clock() - self._epoch) * self.config.time_scale

    def fan(self, account: str, recipient: str) -> SimulatedFan:
        with self._lock:
            return self._fan(account, recipient)

    def _fan(self, account: str, recipient: str) -> SimulatedFan:
        fan = self._fans.get((account, recipient))
        if fan is None:
            seed, scale = self.config.seed, self.config.value_scale_cents
            fan = self._fans[account, recipient] = SimulatedFan(
                traits(seed, account, recipient, scale),
                FanMood(at=self.now()),
                fan_rng(seed, account, recipient, "simulator"),
            )
        return fan

    def respond(self, account: str, recipient: str, price_cents: int) -> Outcome:
        """The fan's answer to a message delivered now (nothing, if it has churned)."""
        with self._lock:
            fan = self._fan(account, recipient)
            at = max(self.now(), fan.mood.at)
            if not fan.mood.live_until(fan.traits, at, fan.rng):
                return Outcome(read=False, bought=False, replied=False)
            response = respond(fan.traits, fan.mood, price_cents, fan.rng)
            fan.mood.creator_wrote(at, price_cents)
            if response.reply_after is not None:
                fan.mood.fan_wrote(at)
        return Outcome(
            read=response.read_after is not None,
            bought=response.bought,
            replied=response.reply_after is not None,
        )
