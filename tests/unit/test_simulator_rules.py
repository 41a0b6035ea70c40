"""The simulator's fans treat a message by what it says: the first rule its text matches."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from adapters.dev import _overridden
from adapters.onlyfans.simulator import Delivery, MessageRule, SimulatorConfig, SimulatorState

RULES = (
    MessageRule(contains="Offer B", purchase_probability=0.4),
    MessageRule(contains="Offer", purchase_probability=0.2, reply_probability=0.5),
)


def config() -> SimulatorConfig:
    return SimulatorConfig(
        read_probability=0.9, purchase_probability=0.1, reply_probability=0.3, message_rules=RULES
    )


def test_the_first_rule_a_message_matches_decides_and_the_defaults_fill_what_it_leaves() -> None:
    b = config().behaviour_for("Hi Ann, Offer B inside")
    assert (b.read_probability, b.purchase_probability, b.reply_probability) == (0.9, 0.4, 0.3)


def test_a_later_rule_applies_when_the_earlier_ones_do_not_match() -> None:
    a = config().behaviour_for("Offer A for you")
    assert (a.read_probability, a.purchase_probability, a.reply_probability) == (0.9, 0.2, 0.5)


def test_a_message_matching_no_rule_gets_the_defaults() -> None:
    plain = config().behaviour_for("hello")
    assert (plain.read_probability, plain.purchase_probability, plain.reply_probability) == (
        0.9,
        0.1,
        0.3,
    )


def test_a_rule_may_set_a_probability_to_zero() -> None:
    zero = SimulatorConfig(
        purchase_probability=0.5, message_rules=(MessageRule(contains="x", purchase_probability=0),)
    )
    assert zero.behaviour_for("x").purchase_probability == 0


@pytest.mark.parametrize(
    "rule",
    [
        MessageRule(contains="", read_probability=0.5),
        MessageRule(contains="a", reply_probability=2),
    ],
)
def test_a_rule_outside_the_rules_is_refused(rule: MessageRule) -> None:
    with pytest.raises(ValueError, match="message_rules"):
        SimulatorConfig(message_rules=(rule,))


def test_rules_come_from_json_as_crm_dev_reads_them() -> None:
    raw = b'{"message_rules": [{"contains": "B", "purchase_probability": 0.4}]}'
    parsed = msgspec.json.decode(raw, type=SimulatorConfig)
    assert parsed.message_rules == (MessageRule(contains="B", purchase_probability=0.4),)


def test_with_rules_what_a_fan_does_depends_on_the_message_not_on_the_order_of_sends() -> None:
    def delivery(key: str) -> Delivery:
        return Delivery(
            account="acct",
            recipient="1",
            text="Offer B",
            price_cents=500,
            media_urls=(),
            idempotency_key=key,
            platform_message_id=f"msg_{key}",
            delivered_at=datetime.now(UTC),
        )

    keys = [f"key-{n}" for n in range(200)]

    def plans(order: list[str]) -> dict[str, list[str]]:
        state = SimulatorState(config())
        return {k: [s.type for s in state._webhook_plan(delivery(k)).steps] for k in order}

    forwards, backwards = plans(keys), plans(keys[::-1])
    assert forwards == backwards
    bought = sum("message.purchased" in steps for steps in forwards.values())
    assert 50 < bought < 110  # 0.4 of 200


def test_crm_dev_takes_message_rules_from_its_simulator_setting() -> None:
    raw = '{"message_rules": [{"contains": "Offer B", "purchase_probability": 0.4}]}'
    overridden = _overridden(SimulatorConfig(purchase_probability=0.1), raw)
    assert overridden.behaviour_for("Offer B").purchase_probability == 0.4
    assert overridden.behaviour_for("Offer A").purchase_probability == 0.1
