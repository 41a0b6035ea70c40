"""A/B tests: a message's variants, which one each fan gets, and the test's stop rule.

Which variant a fan gets is a pure function of the test and the fan, never of a counter or of
the order fans are reached: a retried chunk, a second worker or a replay all pick the same one,
and a fan's variant never changes when other fans join the audience. The same goes for whether
a fan is in the test portion of an auto-winner test. Used by campaigns; usable by anything
else that names its test with a stable key (a sequence step, say).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Literal

import msgspec

from domain.errors import InvalidValue

MIN_VARIANTS = 2
MAX_VARIANTS = 10
MAX_WEIGHT = 10_000
MAX_VARIANT_NAME = 50
GOALS = ("purchase", "reply", "open")
Goal = Literal["purchase", "reply", "open"]
DEFAULT_MIN_PER_VARIANT = 100
DEFAULT_THRESHOLD = 0.95
MAX_MIN_PER_VARIANT = 1_000_000

_SPAN = 2**64  # blake2b with an 8-byte digest: a point in [0, 2**64)


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    """One version of the message. Its content is a template, checked by whoever sends it."""

    name: str
    content: str
    price_cents: int = 0
    attachments: tuple[tuple[str, str], ...] = ()
    weight: int = 1


class AbTest(msgspec.Struct, frozen=True, kw_only=True):
    """How the test is judged, and whether the rest of the audience waits for its winner.

    ``holdout_percent``: the share of the audience sent first, as the test; the others get the
    winner once ``min_per_variant`` messages of each variant were sent and one variant's
    probability of being the best on ``goal`` reaches ``threshold``."""

    goal: Goal = "purchase"
    auto_winner: bool = False
    holdout_percent: int | None = None
    min_per_variant: int = DEFAULT_MIN_PER_VARIANT
    threshold: float = DEFAULT_THRESHOLD


def check_variants(variants: Iterable[Variant]) -> tuple[Variant, ...]:
    """The variants, named (a missing name is its letter: A, B, ...), their count and weights
    checked. Contents, prices and media are the sender's to check."""
    given = list(variants)
    if not MIN_VARIANTS <= len(given) <= MAX_VARIANTS:
        raise InvalidValue("variants", f"give {MIN_VARIANTS} to {MAX_VARIANTS} variants")
    named = []
    for index, variant in enumerate(given):
        weight = variant.weight
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 < weight <= MAX_WEIGHT:
            raise InvalidValue("variants", f"each weight must be an integer from 1 to {MAX_WEIGHT}")
        name = (variant.name or "").strip() or chr(ord("A") + index)
        if len(name) > MAX_VARIANT_NAME or "\x00" in name:
            raise InvalidValue("variants", f"a name must be 1-{MAX_VARIANT_NAME} characters")
        named.append(msgspec.structs.replace(variant, name=name))
    if len({v.name for v in named}) != len(named):
        raise InvalidValue("variants", "variant names must be unique")
    return tuple(named)


def check_ab_test(test: AbTest) -> AbTest:
    if test.goal not in GOALS:
        raise InvalidValue("goal", f"must be one of {', '.join(GOALS)}")
    if not 0.5 <= test.threshold < 1:
        raise InvalidValue("threshold", "must be at least 0.5 and below 1")
    if not 1 <= test.min_per_variant <= MAX_MIN_PER_VARIANT:
        raise InvalidValue("min_per_variant", f"must be 1 to {MAX_MIN_PER_VARIANT}")
    if test.holdout_percent is not None and not 1 <= test.holdout_percent <= 99:
        raise InvalidValue("holdout", "must be a percentage from 1 to 99")
    if test.auto_winner and test.holdout_percent is None:
        raise InvalidValue(
            "holdout", "an auto winner needs a holdout: the share of the audience to test"
        )
    return test


def choose_variant(test_key: str, fan_id: int, weights: Sequence[int]) -> int:
    """The index of the fan's variant: the fan's point in [0, 1) taken against the weights'
    cumulative shares. Exact integer arithmetic, so scaling every weight by the same factor
    changes no fan's variant."""
    if not weights or any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    total = sum(weights)
    point = _point(f"{test_key}:{fan_id}") * total
    for index, upto in enumerate(accumulate(weights)):
        if point < upto * _SPAN:
            return index
    raise AssertionError("a point below 2**64 * total is below the last cumulative weight")


def in_test_portion(test_key: str, fan_id: int, percent: int) -> bool:
    """Whether the fan is in the share of the audience that is sent the test first. Hashed
    apart from ``choose_variant`` (another prefix), so the portion is not skewed towards any
    variant."""
    return _point(f"portion:{test_key}:{fan_id}") * 100 < percent * _SPAN


def _point(key: str) -> int:
    # Never Python's hash(): it is salted per process, and every worker must agree.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
