"""Which variant of an A/B test a fan gets: deterministic, weighted, independent of others."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidValue
from domain.variants import (
    AbTest,
    Variant,
    check_ab_test,
    check_variants,
    choose_variant,
    in_test_portion,
)

keys = st.text(min_size=1, max_size=30)
fans = st.integers(min_value=1, max_value=2**63 - 1)
weights = st.lists(st.integers(min_value=1, max_value=1000), min_size=2, max_size=10)


@given(keys, fans, weights)
def test_a_fan_gets_the_same_variant_every_time_it_is_asked(
    key: str, fan_id: int, w: list[int]
) -> None:
    first = choose_variant(key, fan_id, w)
    assert 0 <= first < len(w)
    assert all(choose_variant(key, fan_id, list(w)) == first for _ in range(3))


@given(keys, st.lists(fans, min_size=1, max_size=50, unique=True), weights)
def test_a_fans_variant_does_not_depend_on_the_other_fans_asked(
    key: str, audience: list[int], w: list[int]
) -> None:
    alone = {fan_id: choose_variant(key, fan_id, w) for fan_id in audience}
    together = {fan_id: choose_variant(key, fan_id, w) for fan_id in reversed(audience)}
    assert alone == together


@given(keys, fans, weights, st.integers(min_value=2, max_value=50))
def test_scaling_every_weight_alike_changes_nobodys_variant(
    key: str, fan_id: int, w: list[int], factor: int
) -> None:
    assert choose_variant(key, fan_id, w) == choose_variant(key, fan_id, [x * factor for x in w])


@given(keys, st.lists(st.integers(min_value=1, max_value=9), min_size=2, max_size=4))
def test_over_many_fans_each_variant_gets_its_weights_share(key: str, w: list[int]) -> None:
    fans_asked = 20_000
    counts = [0] * len(w)
    for fan_id in range(1, fans_asked + 1):
        counts[choose_variant(key, fan_id, w)] += 1
    for weight, count in zip(w, counts, strict=True):
        expected = fans_asked * weight / sum(w)
        # Binomial sd is at most sqrt(n/4) ~ 71 here: six of them never trip by chance.
        assert abs(count - expected) < 6 * (fans_asked * 0.25) ** 0.5


def test_two_tests_split_the_same_fans_independently() -> None:
    same = sum(
        choose_variant("campaign-1", fan_id, [1, 1]) == choose_variant("campaign-2", fan_id, [1, 1])
        for fan_id in range(1, 10_001)
    )
    assert 4_700 < same < 5_300


@given(keys, st.integers(min_value=1, max_value=99))
def test_the_test_portion_holds_about_its_percentage_of_the_audience(
    key: str, percent: int
) -> None:
    inside = sum(in_test_portion(key, fan_id, percent) for fan_id in range(1, 10_001))
    assert abs(inside - percent * 100) < 6 * 50


def test_the_test_portion_is_not_skewed_towards_a_variant() -> None:
    picked = [
        choose_variant("campaign-9", fan_id, [1, 1])
        for fan_id in range(1, 20_001)
        if in_test_portion("campaign-9", fan_id, 30)
    ]
    assert abs(sum(picked) / len(picked) - 0.5) < 0.03


def test_variants_without_names_are_named_by_their_letter() -> None:
    named = check_variants([Variant(name="", content="a"), Variant(name="B2", content="b")])
    assert [v.name for v in named] == ["A", "B2"]


@pytest.mark.parametrize(
    "variants",
    [
        [Variant(name="A", content="a")],
        [Variant(name="A", content="a", weight=0), Variant(name="B", content="b")],
        [Variant(name="A", content="a", weight=True), Variant(name="B", content="b")],
        [Variant(name="A", content="a"), Variant(name="A", content="b")],
        [Variant(name=str(i), content="x") for i in range(11)],
    ],
)
def test_malformed_variants_are_refused(variants: list[Variant]) -> None:
    with pytest.raises(InvalidValue):
        check_variants(variants)


@pytest.mark.parametrize(
    "test",
    [
        AbTest(goal="revenue"),  # type: ignore[arg-type]
        AbTest(threshold=1.0),
        AbTest(threshold=0.2),
        AbTest(min_per_variant=0),
        AbTest(holdout_percent=100),
        AbTest(auto_winner=True),
    ],
)
def test_malformed_stop_rules_are_refused(test: AbTest) -> None:
    with pytest.raises(InvalidValue):
        check_ab_test(test)
