"""Simulated fans with hidden traits: the known truth that churn, pricing and reply models are
measured against. Pure and seeded: no I/O, no clock; the same (seed, account, fan) always
gives the same fan, whatever else is drawn and in whatever order fans are met.

Traits (``traits``), drawn once per fan from ``random.Random(f"fan:{seed}:{account}:{fan}")``:

==========================  ===========================================  ==================
trait                       distribution                                 meaning
==========================  ===========================================  ==================
``keen``                    U(0.3, 0.8)                                  buys at all
``value_cents``             ``value_scale`` · exp(N(0, 0.5))             demand curve scale
``read_probability``        U(0.5, 0.95)                                 opens a message
``reply_probability``       Beta(2, 3) (mean 0.4)                        answers a message
``reply_delay_hours``       exp(N(ln 1.5, 0.8)) (median 1.5 h)           its median delay
``messages_per_day``        exp(N(ln 0.12, 0.9)) (median 0.12)           writes unprompted
``tips_per_month``          exp(N(ln 0.3, 1.0))                          tips
``tip_cents``               500 · exp(N(0, 0.6)), whole dollars, ≥ $1     a tip's size
``base_hazard``             exp(N(ln 0.001, 0.5)) per day                churn when cared for
``sensitivity``             U(0.5, 1.5)                                  how neglect hurts
==========================  ===========================================  ==================

Demand curve: P(buy at price p) = keen · exp(-p / value_cents); the revenue p · P peaks at
p = value_cents. ``value_scale`` is 1,800 cents unless the caller says otherwise.

Neglect (``FanMood``): ``unanswered`` counts the fan's messages since the creator last
answered it (a free message from the creator answers; a priced one is a sales pitch, not an
answer), ``waiting_since`` is when the oldest of them was written, and ``bond`` counts the
creator's answers, each fading with a 14-day time constant. The neglect score is
``N = 0.3 · min(unanswered, 10) + min(days waiting, 60) / 10``; a fan who writes nothing is
never waiting, so a quiet fan is not neglected, however long since it was last heard of.

Churn: the daily hazard is ``min(0.5, base_hazard · exp(sensitivity · N - 0.7 · min(bond, 3)))``:
it rises while the fan waits unanswered and falls with each answer. A churned fan never
writes, reads, replies, buys, tips or renews again. Before it goes, neglect shows: with score
N the fan writes ``exp(-0.25 N)`` times as often, replies with ``exp(-0.2 N)`` of its
probability, reads with ``exp(-0.1 N)`` of it, buys with ``exp(-0.15 N)`` of its keenness and
takes ``1 + 0.5 N`` times as long to reply. Subscriptions renew every 30 days while active.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY = 86_400.0
VALUE_SCALE_CENTS = 1_800.0
BOND_DAYS = 14.0
MAX_HAZARD = 0.5


@dataclass(frozen=True, slots=True)
class FanTraits:
    keen: float
    value_cents: float
    read_probability: float
    reply_probability: float
    reply_delay_hours: float
    messages_per_day: float
    tips_per_month: float
    tip_cents: int
    base_hazard: float
    sensitivity: float

    def buy_probability(self, price_cents: int, neglect: float = 0.0) -> float:
        """The demand curve at ``price_cents`` (a free message is not bought)."""
        if price_cents <= 0:
            return 0.0
        return demand(self.keen, self.value_cents, price_cents) * math.exp(-0.15 * neglect)


def demand(keen: float, value_cents: float, price_cents: float) -> float:
    return keen * math.exp(-price_cents / value_cents)


def fan_rng(seed: int, account: str, fan: str | int, stream: str = "traits") -> random.Random:
    # Reproducible behaviour, not secrets: a string seed is hashed the same in every process.
    return random.Random(f"fan:{seed}:{account}:{fan}:{stream}")  # noqa: S311


def traits(
    seed: int, account: str, fan: str | int, value_scale: float = VALUE_SCALE_CENTS
) -> FanTraits:
    rng = fan_rng(seed, account, fan)
    return FanTraits(
        keen=rng.uniform(0.3, 0.8),
        value_cents=value_scale * math.exp(rng.gauss(0.0, 0.5)),
        read_probability=rng.uniform(0.5, 0.95),
        reply_probability=rng.betavariate(2.0, 3.0),
        reply_delay_hours=math.exp(rng.gauss(math.log(1.5), 0.8)),
        messages_per_day=math.exp(rng.gauss(math.log(0.12), 0.9)),
        tips_per_month=math.exp(rng.gauss(math.log(0.3), 1.0)),
        tip_cents=max(100, round(5 * math.exp(rng.gauss(0.0, 0.6))) * 100),
        base_hazard=math.exp(rng.gauss(math.log(0.001), 0.5)),
        sensitivity=rng.uniform(0.5, 1.5),
    )


def population(
    seed: int, count: int, account: str = "bench", value_scale: float = VALUE_SCALE_CENTS
) -> list[FanTraits]:
    return [traits(seed, account, fan, value_scale) for fan in range(count)]


@dataclass(slots=True)
class FanMood:
    """What the fan feels about the creator, at ``at`` (seconds on the caller's clock)."""

    at: float = 0.0
    unanswered: int = 0
    waiting_since: float | None = None
    bond: float = 0.0
    churned_at: float | None = None

    @property
    def churned(self) -> bool:
        return self.churned_at is not None

    def neglect(self, at: float | None = None) -> float:
        now = self.at if at is None else at
        waiting = 0.0 if self.waiting_since is None else max(0.0, now - self.waiting_since) / DAY
        return 0.3 * min(self.unanswered, 10) + min(waiting, 60.0) / 10.0

    def hazard(self, fan: FanTraits, at: float | None = None) -> float:
        exponent = fan.sensitivity * self.neglect(at) - 0.7 * min(self.bond, 3.0)
        return min(MAX_HAZARD, fan.base_hazard * math.exp(exponent))

    def fan_wrote(self, at: float) -> None:
        self.unanswered += 1
        if self.waiting_since is None:
            self.waiting_since = at

    def creator_wrote(self, at: float, price_cents: int) -> None:
        """A free message answers the fan; a priced one leaves it waiting."""
        if price_cents > 0:
            return
        self.unanswered, self.waiting_since = 0, None
        self.bond += 1.0

    def live_until(self, fan: FanTraits, until: float, rng: random.Random) -> bool:
        """Let time pass to ``until``, a day's hazard at a time (the last step pro rata):
        True if the fan is still there. The bond fades on the way."""
        while self.churned_at is None and self.at < until:
            step = min(DAY, until - self.at)
            hazard = self.hazard(fan, self.at + step)
            if rng.random() < 1.0 - math.exp(-hazard * step / DAY):
                self.churned_at = self.at + step
            self.bond *= math.exp(-step / DAY / BOND_DAYS)
            self.at += step
        return self.churned_at is None


@dataclass(frozen=True, slots=True)
class Response:
    """How the fan treats one message from the creator; delays in seconds after it."""

    read_after: float | None
    bought: bool
    reply_after: float | None


def respond(fan: FanTraits, mood: FanMood, price_cents: int, rng: random.Random) -> Response:
    """Draw the fan's answer to a creator message arriving now (``mood`` as it was before)."""
    if mood.churned:
        return Response(None, False, None)
    neglect = mood.neglect()
    bought = rng.random() < fan.buy_probability(price_cents, neglect)
    opened = bought or rng.random() < fan.read_probability * math.exp(-0.1 * neglect)
    replies = rng.random() < fan.reply_probability * math.exp(-0.2 * neglect)
    delay = reply_delay(fan, neglect, rng)
    read_after = min(delay, 60.0 + rng.expovariate(1 / 1800)) if opened else None
    return Response(read_after, bought, delay if replies else None)


def reply_delay(fan: FanTraits, neglect: float, rng: random.Random) -> float:
    hours = fan.reply_delay_hours * math.exp(rng.gauss(0.0, 0.7)) * (1.0 + 0.5 * neglect)
    return hours * 3600.0
