"""What each platform's API lets a CRM do: the capability matrix, and the refusal of a message
that its recipient's platform cannot carry.

The matrix is what the platforms' APIs document (sources in README.md, "Platforms"), not what
their apps offer a person: Patreon's app has direct messages, its public API v2 has none, so
a CRM cannot send one there and refuses it instead of accepting it and losing it.
"""

from __future__ import annotations

import msgspec

from domain.errors import InvalidValue
from domain.message import MAX_PRICE_CENTS, MIN_PRICE_CENTS


class PriceRange(msgspec.Struct, frozen=True, kw_only=True):
    min_cents: int
    max_cents: int


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    direct_messages: bool
    paid_messages: PriceRange | None  # None: no paid (pay-per-view) messages
    media: bool
    read_receipts: bool
    purchases: bool
    fan_sync: bool
    webhooks: bool


_PPV = PriceRange(min_cents=MIN_PRICE_CENTS, max_cents=MAX_PRICE_CENTS)

CAPABILITIES: dict[str, Capabilities] = {
    # No official API: the common third-party providers' shape (adapters/onlyfans/).
    "onlyfans": Capabilities(
        direct_messages=True,
        paid_messages=_PPV,
        media=True,
        read_receipts=True,
        purchases=True,
        fan_sync=True,
        webhooks=True,
    ),
    # No official API either: the providers serving Fansly speak the same shape.
    "fansly": Capabilities(
        direct_messages=True,
        paid_messages=_PPV,
        media=True,
        read_receipts=True,
        purchases=True,
        fan_sync=True,
        webhooks=True,
    ),
    # API v2 (docs.patreon.com): identity, campaigns, members, posts read; webhooks written.
    # Nothing sends a message, and a pledge is a membership, not a purchase of one message.
    "patreon": Capabilities(
        direct_messages=False,
        paid_messages=None,
        media=False,
        read_receipts=False,
        purchases=False,
        fan_sync=True,
        webhooks=True,
    ),
}


class PlatformCannotMessage(InvalidValue):
    """The recipient's platform offers no way for a CRM to send this message (422 at the API,
    ``platform-cannot-message``): refused before anything is recorded."""

    def __init__(self, platform: str, reason: str, field: str = "recipient_id") -> None:
        super().__init__(field, reason)
        self.platform = platform


def check_can_message(platform: str, fan_id: int, *, configured: frozenset[str] | None) -> None:
    """Refuse a message to fan ``fan_id`` on ``platform``: one whose API has no direct
    messages, or (``configured``: the platforms with a gateway here; None: not known to the
    caller) one no gateway of this deployment speaks to. A message never goes to another
    platform's gateway instead."""
    capabilities = CAPABILITIES.get(platform)
    if capabilities is None or not capabilities.direct_messages:
        raise PlatformCannotMessage(
            platform,
            f"fan {fan_id} is on {platform}, whose API offers no direct messages",
        )
    if configured is not None and platform not in configured:
        raise PlatformCannotMessage(
            platform,
            f"fan {fan_id} is on {platform}, and no {platform} gateway is configured",
        )
