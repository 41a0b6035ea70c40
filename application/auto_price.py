"""``priceCents: "auto"``: the bandit's price for one recipient, decided once when its message
is queued and recorded on it (``Message.Queued.price_cents``), so a replay, a retry or a repeat
of the message id sends that price and never decides again.

The counts come from the pricing read model, which may lag the log by a moment: the price is a
statistical choice, and an offer or a purchase seen a moment late changes it no more than one
more sample would; nothing a command refuses or allows hangs on it.
"""

from __future__ import annotations

from typing import Protocol

from application.pricing import PriceCounts, Recommendation, recommend, seeded

AUTO = "auto"


class PricingCounts(Protocol):
    async def counts(
        self, tenant: str, fan_id: int | None
    ) -> tuple[list[PriceCounts], list[PriceCounts]]:
        """The account's counts per grid price, and the fan's (empty without a fan)."""
        ...

    async def for_fans(
        self, tenant: str, fan_ids: list[int]
    ) -> tuple[list[PriceCounts], dict[int, list[PriceCounts]]]:
        """The account's counts, and each of ``fan_ids``' that has any: for a whole chunk of
        a campaign's audience in one read."""
        ...


async def price_for(
    pricing: PricingCounts, tenant: str, fan_id: int, message_id: str
) -> Recommendation:
    """Sampled with a generator seeded by the message id: the same message, asked again with
    the same evidence, is offered the same price."""
    account, fan = await pricing.counts(tenant, fan_id)
    return priced(account, fan, tenant, message_id)


def priced(
    account: list[PriceCounts], fan: list[PriceCounts], tenant: str, message_id: str
) -> Recommendation:
    return recommend(account, seeded(f"{tenant}:{message_id}"), fan)


class _NoEvidence:
    """The counts of a caller run without the read model: none, so the model's prior decides
    (every grid price equally likely to be tried)."""

    async def counts(
        self, tenant: str, fan_id: int | None
    ) -> tuple[list[PriceCounts], list[PriceCounts]]:
        return [], []

    async def for_fans(
        self, tenant: str, fan_ids: list[int]
    ) -> tuple[list[PriceCounts], dict[int, list[PriceCounts]]]:
        return [], {}


NO_EVIDENCE: PricingCounts = _NoEvidence()
