"""How long an Idempotency-Key is kept comes from the environment."""

from __future__ import annotations

from adapters.config import Settings


def test_idempotency_keys_are_kept_a_day_unless_the_environment_says_otherwise() -> None:
    assert Settings.from_env({"DATABASE_URL": "postgresql://x"}).idempotency_ttl_seconds == 86_400
    configured = Settings.from_env(
        {"DATABASE_URL": "postgresql://x", "IDEMPOTENCY_TTL_SECONDS": "3600"}
    )
    assert configured.idempotency_ttl_seconds == 3600
