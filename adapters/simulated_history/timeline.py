"""One fan's simulated life with an account, as dated actions: pure, seeded, no I/O.

The fan is adapters/onlyfans/fan_model.py's. The creator is simulated too, per fan:

* ``attention``: the chance the creator answers when the fan writes; 35% of fans are
  neglected (U(0, 0.3)), the others cared for (U(0.6, 1.0)). An answer comes after
  exp(N(ln 2 h, 1)) and answers everything the fan wrote before it (one answer pending at a
  time).
* a free check-in, unprompted, with probability 0.05 · attention a day;
* a PPV offer with probability 0.1 a day, at a price drawn from ``PRICES``: a pitch, which
  leaves a waiting fan waiting (fan_model).

The fan joins on a day drawn uniformly in the first 60% of the span, paying the subscription
(``SUBSCRIPTION_CENTS``), renewed every 30 days while it lives; it tips at its own rate, writes
unprompted at its own rate, and answers, reads and buys the creator's messages as fan_model
draws it. Every action and the fan's churn are checked against its hazard, integrated up to
the moment of the action, so a churned fan does nothing after the moment it churned.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Literal

from adapters.onlyfans.fan_model import DAY, FanMood, FanTraits, fan_rng, respond, traits

PRICES = (500, 800, 1200, 2000, 3000)
SUBSCRIPTION_CENTS = 999
RENEWAL_DAYS = 30
PPV_PER_DAY = 0.1
CHECK_IN_PER_DAY = 0.05
NEGLECTED_SHARE = 0.35

Kind = Literal["join", "creator", "read", "bought", "fan"]


@dataclass(frozen=True, slots=True)
class Action:
    """``key`` numbers the creator's messages to the fan: read/bought name the one they are of."""

    at: float
    kind: Kind
    key: int = 0
    price_cents: int = 0


@dataclass(frozen=True, slots=True)
class Transaction:
    at: float
    kind: Literal["subscription", "renewal", "tip"]
    amount_cents: int


@dataclass(slots=True)
class FanLife:
    index: int
    traits: FanTraits
    attention: float
    joined_at: float
    churned_at: float | None = None
    actions: list[Action] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)


def live(seed: int, account: str, index: int, start: float, days: int) -> FanLife:
    fan = traits(seed, account, index)
    rng = fan_rng(seed, account, index, "life")
    neglected = rng.random() < NEGLECTED_SHARE
    attention = rng.uniform(0.0, 0.3) if neglected else rng.uniform(0.6, 1.0)
    joined = start + rng.uniform(0.0, 0.6 * days) * DAY
    life = FanLife(index, fan, attention, joined)
    life.actions.append(Action(joined, "join"))
    life.transactions.append(Transaction(joined, "subscription", SUBSCRIPTION_CENTS))
    _Simulation(life, rng).run(start + days * DAY)
    return life


class _Simulation:
    def __init__(self, life: FanLife, rng: random.Random) -> None:
        self.life, self.rng, self.fan = life, rng, life.traits
        self.mood = FanMood(at=life.joined_at)
        self.queue: list[tuple[float, int, str, int, int]] = []  # (at, seq, what, key, price)
        self.seq = 0
        self.sent = 0
        self.answer_pending = False

    def later(self, at: float, what: str, key: int = 0, price: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, what, key, price))

    def run(self, end: float) -> None:
        day_start = self.life.joined_at
        renewal = day_start + RENEWAL_DAYS * DAY
        while day_start < end and not self.mood.churned:
            day_end = min(day_start + DAY, end)
            self._plan_day(day_start, day_end, renewal)
            if renewal < day_end:
                renewal += RENEWAL_DAYS * DAY
            while self.queue and self.queue[0][0] < day_end:
                at, _, what, key, price = heapq.heappop(self.queue)
                if not self.mood.live_until(self.fan, at, self.rng):
                    break
                self._do(at, what, key, price)
            self.mood.live_until(self.fan, day_end, self.rng)
            day_start = day_end
        self.life.churned_at = self.mood.churned_at

    def _plan_day(self, start: float, end: float, renewal: float) -> None:
        rng, span = self.rng, end - start
        engagement = math.exp(-0.25 * self.mood.neglect(start))
        for _ in range(_poisson(rng, self.fan.messages_per_day * engagement * span / DAY)):
            self.later(start + rng.random() * span, "fan")
        for _ in range(_poisson(rng, self.fan.tips_per_month / 30 * engagement * span / DAY)):
            self.later(start + rng.random() * span, "tip")
        if rng.random() < PPV_PER_DAY * span / DAY:
            self.later(start + rng.random() * span, "creator", price=rng.choice(PRICES))
        if rng.random() < CHECK_IN_PER_DAY * self.life.attention * span / DAY:
            self.later(start + rng.random() * span, "creator")
        if start <= renewal < end:
            self.later(renewal, "renewal")

    def _do(self, at: float, what: str, key: int, price: int) -> None:
        life, rng = self.life, self.rng
        if what == "fan":
            life.actions.append(Action(at, "fan"))
            self.mood.fan_wrote(at)
            if not self.answer_pending and rng.random() < life.attention:
                self.answer_pending = True
                delay = math.exp(rng.gauss(math.log(2.0), 1.0)) * 3600.0
                self.later(at + delay, "creator", price=0)
        elif what == "creator":
            self.sent += 1
            life.actions.append(Action(at, "creator", self.sent, price))
            if price == 0:
                self.answer_pending = False
            response = respond(self.fan, self.mood, price, rng)
            self.mood.creator_wrote(at, price)
            if response.read_after is not None:
                self.later(at + response.read_after, "read", self.sent, price)
                if response.bought:
                    self.later(at + response.read_after + 1.0, "bought", self.sent, price)
            if response.reply_after is not None:
                self.later(at + response.reply_after, "fan")
        elif what in ("read", "bought"):
            life.actions.append(Action(at, "read" if what == "read" else "bought", key, price))
        elif what == "tip":
            life.transactions.append(Transaction(at, "tip", self.fan.tip_cents))
        elif what == "renewal":
            life.transactions.append(Transaction(at, "renewal", SUBSCRIPTION_CENTS))


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: the means here are small (well under 10)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
