"""Ports of the sender: the platform gateway and the per-account rate limiter, and the routing
of a message to its own platform's pair of them.

There is no official OnlyFans API: the gateway speaks the HTTP shape of the common third-party
providers (see adapters/onlyfans/). Every send carries the message id as its Idempotency-Key, so
a retry after an ambiguous failure (a timeout) can never deliver twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

import msgspec

# How the platform answered a send, classified by the gateway (never raised).
PlatformOutcome = Literal["sent", "rate_limited", "retryable", "permanent"]


class PlatformMessage(msgspec.Struct, frozen=True, kw_only=True):
    account: str  # the creator account (our tenant) the message is sent from
    recipient: str  # the fan, as the platform knows them
    text: str
    price_cents: int = 0
    media_urls: tuple[str, ...] = ()
    idempotency_key: str  # our message id


class PlatformSendResult(msgspec.Struct, frozen=True, kw_only=True):
    outcome: PlatformOutcome
    platform_message_id: str | None = None
    retry_after: float | None = None  # seconds, for rate_limited (and retryable if known)
    reason: str | None = None  # for the logs and for a failed message
    # A retryable failure after which the message may still have been delivered (a timeout):
    # only another try with the same idempotency key can tell.
    ambiguous: bool = False


class OnlyFansGateway(Protocol):
    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        """Never raises for an HTTP or network failure: classifies it instead."""
        ...


class PlatformRoute(msgspec.Struct, frozen=True):
    """How a message of one platform leaves: its gateway, and its limiter (its own keys and
    limits: one platform's pace never spends another's tokens)."""

    gateway: OnlyFansGateway
    limiter: RateLimiter


class PlatformGateways:
    """The gateway port, one per platform, chosen by the platform recorded on the message
    when it was queued (from its fan). A platform without a gateway here has no route: its
    message is failed with that reason, never sent through another platform's gateway."""

    def __init__(self, routes: dict[str, PlatformRoute]) -> None:
        self._routes = dict(routes)

    def route(self, platform: str) -> PlatformRoute | None:
        return self._routes.get(platform)

    def replace(self, platform: str, route: PlatformRoute) -> None:
        self._routes[platform] = route

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(self._routes)


class LimiterUnavailable(Exception):
    """The rate limiter cannot answer (its Redis is away): nobody can say how fast an account
    may send, so nothing is sent until it answers again."""


class TokenAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The limiter's answer to one ask for a token.

    ``at`` is when it decided, on the limiter's own clock (Redis's ``TIME``: the one clock all
    sender processes share), or None for a limiter without one (disabled). The limit is a
    promise about these moments, not about when a request reaches the platform (that adds the
    network's and the scheduler's jitter), so a grant's ``at`` is what shows it was kept."""

    wait: float  # 0: a token was taken for the caller; else seconds until one is free
    at: datetime | None = None

    @property
    def granted(self) -> bool:
        return self.wait <= 0


class RateLimiter(Protocol):
    async def try_acquire(self, account: str) -> TokenAnswer:
        """Take one token for ``account`` if one is free (``wait`` 0); otherwise take nothing
        and answer how many seconds until one will be. Raises LimiterUnavailable."""
        ...

    async def check(self) -> None:
        """Return once the limiter answers; raise LimiterUnavailable if it does not."""
        ...
