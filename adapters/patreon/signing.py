"""Patreon's webhook signature: ``X-Patreon-Signature`` is the hex HMAC-MD5 of the raw body
with the webhook's secret (docs.patreon.com, "Webhooks"); ``X-Patreon-Event`` is the trigger.

MD5 is Patreon's choice, not ours: as an HMAC it still proves the sender knew the secret. There
is no timestamp in what is signed, so a captured webhook can be replayed at any time; the
receiver refuses replays by remembering every webhook it applied (application/
patreon_webhooks.py).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Patreon-Signature"
EVENT_HEADER = "X-Patreon-Event"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.md5).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Never raises; constant time in what matched (compare_digest)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().lower().encode())
