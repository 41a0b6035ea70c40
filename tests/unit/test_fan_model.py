"""The simulated fans' generative model: determinism, the demand curve, and churn that rises
with neglect and falls with the creator's answers."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.dev import _overridden
from adapters.onlyfans.fan_model import DAY, FanMood, population, respond, traits
from adapters.onlyfans.population import PopulationConfig
from adapters.onlyfans.simulator import SimulatorConfig

fans = st.integers(min_value=0, max_value=10**9)
seeds = st.integers(min_value=0, max_value=2**31)


@given(seeds, fans)
def test_a_fan_is_the_same_for_the_same_seed_account_and_id(seed: int, fan: int) -> None:
    assert traits(seed, "acct", fan) == traits(seed, "acct", fan)
    assert traits(seed, "acct", fan) != traits(seed, "other", fan)
    assert traits(seed, "acct", fan) != traits(seed + 1, "acct", fan)


@given(seeds, fans, st.integers(min_value=300, max_value=19_900))
def test_the_demand_curve_falls_with_the_price(seed: int, fan: int, price: int) -> None:
    one = traits(seed, "acct", fan)
    assert 0 < one.buy_probability(price + 100) < one.buy_probability(price) < one.keen
    assert one.buy_probability(0) == 0.0
    expected = one.keen * math.exp(-price / one.value_cents)
    assert math.isclose(one.buy_probability(price), expected)


def test_the_population_s_traits_follow_their_documented_distributions() -> None:
    crowd = population(7, 4000)
    keen = [f.keen for f in crowd]
    assert min(keen) >= 0.3
    assert max(keen) <= 0.8
    assert abs(sum(keen) / len(keen) - 0.55) < 0.01
    values = sorted(f.value_cents for f in crowd)
    assert abs(values[len(values) // 2] - 1800) < 60  # lognormal: median = the scale
    replies = [f.reply_probability for f in crowd]
    assert abs(sum(replies) / len(replies) - 0.4) < 0.01  # Beta(2, 3)


@given(seeds, fans, st.integers(min_value=1, max_value=30), st.floats(min_value=0, max_value=50))
def test_the_hazard_rises_while_the_fan_waits_unanswered(
    seed: int, fan: int, messages: int, days: float
) -> None:
    one = traits(seed, "acct", fan)
    mood = FanMood()
    before = mood.hazard(one)
    for _ in range(messages):
        mood.fan_wrote(0.0)
    ignored = mood.hazard(one, days * DAY)
    assert ignored > before
    assert mood.hazard(one, (days + 1) * DAY) >= ignored


@given(seeds, fans, st.integers(min_value=1, max_value=30))
def test_an_answer_lowers_the_hazard_and_a_priced_pitch_does_not(
    seed: int, fan: int, messages: int
) -> None:
    one = traits(seed, "acct", fan)
    mood = FanMood()
    for _ in range(messages):
        mood.fan_wrote(0.0)
    waiting = mood.hazard(one, 5 * DAY)
    mood.creator_wrote(5 * DAY, price_cents=2000)
    assert mood.hazard(one, 5 * DAY) == waiting
    mood.creator_wrote(5 * DAY, price_cents=0)
    answered = mood.hazard(one, 5 * DAY)
    assert answered < waiting
    assert answered < FanMood().hazard(one)  # the bond: cared-for fans stay longer


def test_ignored_fans_churn_far_more_than_answered_ones() -> None:
    def churned(ignore: bool) -> int:
        count = 0
        for fan in range(400):
            one, rng, mood = traits(3, "acct", fan), random.Random(fan), FanMood()
            for day in range(90):
                mood.fan_wrote(day * DAY)
                if not ignore:
                    mood.creator_wrote(day * DAY + 3600, price_cents=0)
                if not mood.live_until(one, (day + 1) * DAY, rng):
                    count += 1
                    break
        return count

    assert churned(ignore=True) > 350
    assert churned(ignore=False) < 20


def test_a_churned_fan_does_nothing() -> None:
    one = traits(1, "acct", 1)
    mood = FanMood(churned_at=0.0)
    for _ in range(50):
        response = respond(one, mood, 500, random.Random(_))
        assert response.read_after is None
        assert not response.bought
        assert response.reply_after is None


def test_crm_dev_takes_a_population_from_its_simulator_setting() -> None:
    config = _overridden(SimulatorConfig(), '{"population": {"seed": 3, "time_scale": 1440}}')
    assert config.population == PopulationConfig(seed=3, time_scale=1440.0)
    assert SimulatorConfig().population is None  # opt-in: the fixed probabilities by default
    with pytest.raises(SystemExit, match="time_scale"):
        _overridden(SimulatorConfig(), '{"population": {"time_scale": 0}}')
