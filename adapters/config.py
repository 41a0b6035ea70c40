"""Configuration, only from environment variables (read when asked, never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

# The guide's retries of a send: 1 s, 2 s, 4 s after the first three tries, then failed.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str
    redis_url: str | None = None
    # Wraps every fan's data key (32 bytes, base64); never logged. Keys listed in
    # CRM_PREVIOUS_MASTER_KEYS still unwrap during a rotation.
    master_key: str | None = None
    previous_master_keys: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_json: bool = True
    # Requests larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = 1_048_576
    # CSV imports stream their file (never held whole): their own, larger limit (413 beyond),
    # and how many rows each committed batch holds.
    import_max_bytes: int = 1_073_741_824
    import_batch_size: int = 1000
    # How long a read-your-writes query waits for the projector before answering 503.
    read_your_writes_timeout: float = 2.0
    pool_min_size: int = 2
    pool_max_size: int = 10
    # The queue: "postgres" (one machine) or "sqs" (Amazon SQS, or moto's server in dev).
    queue_backend: str = "postgres"
    sqs_endpoint_url: str | None = None
    sqs_queue_prefix: str = "fancrm"
    aws_region: str = "us-east-1"
    visibility_timeout: float = 30.0
    # The sender's retries of a message the platform failed to take (the guide: 1 s, 2 s,
    # 4 s, then failed): SENDER_RETRY_DELAYS="1,2,4". Each try is one receive, so unless
    # SQS_MAX_RECEIVE_COUNT says otherwise a message is tried once more than it has delays.
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    max_receive_count: int = 4
    # Messages of this priority or more go to the high-priority queue.
    high_priority_from: int = 8
    # The OnlyFans API provider (or the simulator in dev).
    onlyfans_api_url: str = "http://127.0.0.1:8100"
    onlyfans_api_key: str = "dev"
    onlyfans_timeout: float = 10.0
    # The sender's limiter per creator account (adapters/redis.py): sends per second, burst,
    # and overrides as (account, rate, burst) from RATE_LIMITS="acct1=2/5,acct2=10/20".
    rate_limiter_enabled: bool = True
    rate_limit_per_second: float = 5.0
    rate_limit_burst: int = 10
    rate_limits: tuple[tuple[str, float, int], ...] = ()
    # /metrics is public (scraped from inside the network) unless this token is set; then it
    # wants "Authorization: Bearer <token>", and only then (or with CRM_METRICS_TENANT_LABELS
    # =true) are series labelled by tenant. Exporting by OTLP is set by the standard OTEL_*
    # variables; those and the labels are read by adapters/metrics.py and adapters/tracing.py.
    metrics_token: str | None = None
    # Campaigns: the largest audience POST /api/messages/bulk queues before it answers (a
    # larger one is the campaign worker's), fans per fan-out transaction, and how long a
    # sender process trusts a campaign's status, asked of the event store: a pause or cancel
    # stops its messages within this (plus the platform calls already under way).
    campaign_inline_recipients: int = 100
    campaign_chunk_size: int = 1000
    campaign_status_ttl: float = 0.25
    # How long an Idempotency-Key is kept (its response replayed, or its outcome unknown):
    # after it the key may be used again, and expired keys are deleted.
    idempotency_ttl_seconds: float = 86_400.0
    # GET /api/monitoring/onlyfans answers "degraded" above these (the guide's thresholds:
    # queueDepth > 1000, dlqCount > 10, dbLatencyMs > 100).
    queue_depth_threshold: int = 1000
    dlq_threshold: int = 10
    db_latency_threshold_ms: float = 100.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "database_url": env.get("DATABASE_URL", ""),
            "redis_url": env.get("REDIS_URL") or None,
            "log_level": env.get("LOG_LEVEL", "INFO"),
            "log_json": env.get("LOG_FORMAT", "json") == "json",
            "master_key": env.get("CRM_MASTER_KEY") or None,
            "metrics_token": env.get("CRM_METRICS_TOKEN") or None,
            "previous_master_keys": tuple(
                key for key in env.get("CRM_PREVIOUS_MASTER_KEYS", "").split(",") if key.strip()
            ),
        }
        for name, key in (
            ("queue_backend", "CRM_QUEUE"),
            ("sqs_endpoint_url", "SQS_ENDPOINT_URL"),
            ("sqs_queue_prefix", "SQS_QUEUE_PREFIX"),
            ("onlyfans_api_url", "ONLYFANS_API_URL"),
            ("onlyfans_api_key", "ONLYFANS_API_KEY"),
            ("aws_region", "AWS_REGION"),
        ):
            if env.get(key):
                values[name] = env[key]
        for name, key, kind in (
            ("visibility_timeout", "SQS_VISIBILITY_TIMEOUT", float),
            ("max_receive_count", "SQS_MAX_RECEIVE_COUNT", int),
            ("high_priority_from", "CRM_HIGH_PRIORITY_FROM", int),
            ("onlyfans_timeout", "ONLYFANS_TIMEOUT", float),
            ("max_body_bytes", "CRM_MAX_BODY_BYTES", int),
            ("import_max_bytes", "CRM_IMPORT_MAX_BYTES", int),
            ("import_batch_size", "CRM_IMPORT_BATCH_SIZE", int),
            ("read_your_writes_timeout", "CRM_READ_YOUR_WRITES_TIMEOUT", float),
            ("pool_min_size", "CRM_POOL_MIN_SIZE", int),
            ("pool_max_size", "CRM_POOL_MAX_SIZE", int),
            ("rate_limit_per_second", "RATE_LIMIT_PER_SECOND", float),
            ("rate_limit_burst", "RATE_LIMIT_BURST", int),
            ("campaign_inline_recipients", "CRM_CAMPAIGN_INLINE_RECIPIENTS", int),
            ("campaign_chunk_size", "CRM_CAMPAIGN_CHUNK_SIZE", int),
            ("campaign_status_ttl", "CRM_CAMPAIGN_STATUS_TTL", float),
            ("idempotency_ttl_seconds", "IDEMPOTENCY_TTL_SECONDS", float),
            ("queue_depth_threshold", "CRM_QUEUE_DEPTH_THRESHOLD", int),
            ("dlq_threshold", "CRM_DLQ_THRESHOLD", int),
            ("db_latency_threshold_ms", "CRM_DB_LATENCY_THRESHOLD_MS", float),
        ):
            if key in env:
                values[name] = kind(env[key])
        if "RATE_LIMITER_ENABLED" in env:
            enabled = env["RATE_LIMITER_ENABLED"].strip().lower()
            values["rate_limiter_enabled"] = enabled not in {"false", "0", "no", "off"}
        if env.get("RATE_LIMITS"):
            values["rate_limits"] = _parse_rate_limits(env["RATE_LIMITS"])
        if env.get("SENDER_RETRY_DELAYS"):
            values["retry_delays"] = parse_retry_delays(env["SENDER_RETRY_DELAYS"])
        values.update(overrides)
        if "SQS_MAX_RECEIVE_COUNT" not in env and "max_receive_count" not in overrides:
            delays = values.get("retry_delays", DEFAULT_RETRY_DELAYS)
            assert isinstance(delays, tuple)
            values["max_receive_count"] = len(delays) + 1
        settings = cls(**values)  # type: ignore[arg-type]
        if not settings.database_url:
            raise SystemExit("DATABASE_URL is not set (or run `crm dev` for the local stack)")
        return settings

    def __repr__(self) -> str:
        # Settings get logged and printed; the master keys must never be.
        return f"Settings(database_url={self.database_url!r}, redis_url={self.redis_url!r})"


# SQS's longest visibility timeout: a retry cannot be put off for longer.
_MAX_RETRY_DELAY = 43_200.0


def parse_retry_delays(text: str) -> tuple[float, ...]:
    """SENDER_RETRY_DELAYS="1,2,4" -> (1.0, 2.0, 4.0): seconds before each retry, in order."""
    wrong = f"SENDER_RETRY_DELAYS: expected seconds such as 1,2,4 (each at most 12 h), got {text!r}"
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SystemExit(wrong) from None
    if not delays or not all(0 <= d <= _MAX_RETRY_DELAY for d in delays):
        raise SystemExit(wrong)
    return delays


def _parse_rate_limits(text: str) -> tuple[tuple[str, float, int], ...]:
    """RATE_LIMITS="acct1=2/5,acct2=10/20" (rate/burst) -> (("acct1", 2.0, 5), ...)."""
    limits = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            account, limit = item.rsplit("=", 1)
            rate, burst = limit.split("/")
            limits.append((account.strip(), float(rate), int(burst)))
        except ValueError:
            raise SystemExit(f"RATE_LIMITS: expected account=rate/burst, got {item!r}") from None
    return tuple(limits)
