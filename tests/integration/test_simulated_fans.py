"""The simulator with a population of fans (fan_model), over real HTTP on 127.0.0.1: purchases
follow each fan's demand curve, and a fan left waiting long enough churns and goes silent.

The simulator's clock is the test's: what each fan does is then the same as a second
``Population`` with the same seed and clock predicts, which tells the test how many webhooks
to wait for."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.onlyfans.fan_model import DAY
from adapters.onlyfans.population import Outcome, Population, PopulationConfig
from adapters.onlyfans.simulator import Delivery, Simulator, SimulatorConfig
from tests.integration.test_onlyfans_client import API_KEY, Receiver, client_for, message

POPULATION = PopulationConfig(seed=11)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await asyncio.to_thread(receiver.server.start)
    yield receiver
    await asyncio.to_thread(receiver.server.stop)


@pytest.fixture
async def world(receiver: Receiver) -> AsyncIterator[tuple[Simulator, Population, Clock]]:
    clock = Clock()
    config = SimulatorConfig(
        api_key=API_KEY,
        webhook_url=receiver.server.url,
        webhook_secrets={"acct-1": "whsec_1"},
        webhook_delay=0.0,
        webhook_delay_jitter=0.0,
        population=POPULATION,
    )
    simulator = Simulator(config, clock=clock)
    await asyncio.to_thread(simulator.start)
    yield simulator, Population(POPULATION, clock), clock
    await asyncio.to_thread(simulator.stop)


def steps(outcome: Outcome, price: int) -> int:
    return outcome.read + (outcome.bought and price > 0) + outcome.replied


async def send_all(simulator: Simulator, sends: list[tuple[str, int]]) -> list[str]:
    keys = []
    async with client_for(simulator) as client:
        for fan, price in sends:
            sent = message(recipient=fan, price_cents=price, text="hello from the creator")
            result = await client.send_message(sent)
            assert result.outcome == "sent"
            keys.append(sent.idempotency_key)
    return keys


def bought(events: list[dict[str, Any]], keys: list[str]) -> int:
    wanted = set(keys)
    return sum(
        e["type"] == "message.purchased" and e["data"]["messageId"] in wanted for e in events
    )


async def test_priced_messages_are_bought_as_each_fan_s_demand_curve_says(
    world: tuple[Simulator, Population, Clock], receiver: Receiver
) -> None:
    simulator, twin, _ = world
    fans = [f"fan-{n}" for n in range(400)]
    sends = [(fan, 1000 if n % 2 else 4000) for n, fan in enumerate(fans)]
    expected = [twin.respond("acct-1", fan, price) for fan, price in sends]
    async with asyncio.timeout(60):
        keys = await send_all(simulator, sends)
        count = sum(
            steps(outcome, price) for outcome, (_, price) in zip(expected, sends, strict=True)
        )
        events = [e for e, _, _ in await receiver.wait_for(count)]

    for price in (1000, 4000):
        mine = [k for k, (_, p) in zip(keys, sends, strict=True) if p == price]
        chances = [
            twin.fan("acct-1", fan).traits.buy_probability(price) for fan, p in sends if p == price
        ]
        mean = sum(chances)
        sd = math.sqrt(sum(c * (1 - c) for c in chances))
        assert abs(bought(events, mine) - mean) <= 4 * sd, (price, bought(events, mine), mean)
    cheap = bought(events, keys[1::2])
    dear = bought(events, keys[0::2])
    assert cheap > 2 * dear  # a curve: the same fans buy far less at four times the price
    assert [bought(events, [k]) for k in keys] == [int(o.bought) for o in expected]


async def test_a_fan_left_waiting_churns_and_never_answers_again(
    world: tuple[Simulator, Population, Clock], receiver: Receiver
) -> None:
    simulator, twin, clock = world
    fans = [f"fan-{n}" for n in range(60)]
    expected = 0
    rounds: list[list[str]] = []
    for days_later in (0, 90, 1):
        clock.now += days_later * DAY
        outcomes = [twin.respond("acct-1", fan, 0) for fan in fans]
        expected += sum(steps(o, 0) for o in outcomes)
        async with asyncio.timeout(30):
            rounds.append(await send_all(simulator, [(fan, 0) for fan in fans]))
    async with asyncio.timeout(30):
        events = [e for e, _, _ in await receiver.wait_for(expected)]

    by_key = {d.idempotency_key: d for d in simulator.deliveries()}
    by_platform_id = {d.platform_message_id: d for d in simulator.deliveries()}

    def answered(event: dict[str, Any]) -> Delivery:
        data = event["data"]
        if event["type"] == "message.received":
            return by_platform_id[data["inReplyTo"]]
        return by_key[data["messageId"]]

    def answering(keys: list[str], kind: str | None = None) -> set[str]:
        return {
            answered(e).recipient
            for e in events
            if answered(e).idempotency_key in keys and kind in (None, e["type"])
        }

    population = simulator.state.population
    assert population is not None
    churned = {fan for fan in fans if population.fan("acct-1", fan).mood.churned}
    assert churned == {fan for fan in fans if twin.fan("acct-1", fan).mood.churned}
    waited = answering(rounds[0], "message.received")
    assert waited & churned, "fans who wrote and were left 90 days waiting churned"
    assert not (answering(rounds[1]) | answering(rounds[2])) & churned, "churned: silent"
    assert answering(rounds[2]) - churned, "the others still answer"
