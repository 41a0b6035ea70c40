"""Webhook signatures: ``X-OnlyFans-Signature: t=<unix seconds>,v1=<hex hmac>``, beside
``X-OnlyFans-Account: <account>``, which names whose secret signed the request.

The HMAC-SHA256 covers ``f"{t}.{raw body}"``: signing the timestamp with the body stops an
attacker from replaying a captured webhook later with a fresh ``t``, and the tolerance window
bounds how long a captured one stays usable. The body must be the raw bytes as received: any
re-serialisation (key order, spacing) changes the digest. The account travels in a header so
that the receiver finds the secret without parsing a body it has not yet authenticated; the
body names the account too, and the receiver holds the two equal once the signature is good.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-OnlyFans-Signature"
ACCOUNT_HEADER = "X-OnlyFans-Account"
DEFAULT_TOLERANCE = 300  # seconds, either way: a clock skew of a few minutes is common


def _digest(secret: str | bytes, body: bytes, timestamp: int) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},v1={_digest(secret, body, int(timestamp))}"


def verify(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of ``now``.

    Never raises: a missing or malformed header is simply not valid. Several ``v1`` entries are
    accepted (a provider rotating its secret signs with both for a while).
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = _digest(secret, body, timestamp)
    # compare_digest on every candidate (no early exit) so timing reveals nothing about which,
    # or how much of one, matched.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    return any(matches)
