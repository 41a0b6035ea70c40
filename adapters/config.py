"""Configuration, only from environment variables (read when asked, never at import).

Two vocabularies name some of the same things: fancrm's own (REDIS_URL, SQS_QUEUE_PREFIX) and
the reference guide's deployment (REDIS_ENDPOINT, SQS_RATE_LIMITER_QUEUE_URL, ...). Both are
read. Where both are set for one thing, the one that is a full URL wins, because it says more:

- REDIS_URL wins over REDIS_ENDPOINT (+ REDIS_TLS): a URL carries the scheme (TLS or not),
  a password and a database number; an endpoint only a host and a port.
- The SQS_RATE_LIMITER_*_URL variables win over SQS_QUEUE_PREFIX: they name four existing
  queues exactly (made by the deployment, never created or changed by fancrm); a prefix names
  queues fancrm creates at start-up. They also select the SQS queue unless CRM_QUEUE says
  otherwise. They come as all four or none (fancrm has two queues, each with its DLQ).
- AWS_REGION wins over AWS_DEFAULT_REGION (botocore's own order); us-east-1 without either.

The rest have one name each: RATE_LIMITER_ENABLED (the reference's and ours), and
CLOUDWATCH_NAMESPACE (default Huntaze/OnlyFans) with METRICS_EMF (adapters/metrics_emf.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

# The guide's retries of a send: 1 s, 2 s, 4 s after the first three tries, then failed.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
DEFAULT_AWS_REGION = "us-east-1"
DEFAULT_CLOUDWATCH_NAMESPACE = "Huntaze/OnlyFans"
_FALSE = frozenset({"false", "0", "no", "off"})
_TRUE = frozenset({"true", "1", "yes", "on"})


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
    # Exact queue URLs (the reference's SQS_RATE_LIMITER_*), keyed as adapters/sqs.py names
    # them: high, normal, high-dlq, normal-dlq. Empty: the queues are found by prefix.
    sqs_queue_urls: dict[str, str] = {}
    aws_region: str = DEFAULT_AWS_REGION
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
    # Patreon's API (issue 20). A connection may name another base URL (a simulator) only if
    # it is listed in CRM_PLATFORM_API_URLS: the server calls that URL with the connection's
    # token, so an open choice would let any tenant make it call anywhere (SSRF).
    patreon_api_url: str = "https://www.patreon.com"
    platform_api_urls: tuple[str, ...] = ()
    # The sender's limiter per creator account (adapters/redis.py): sends per second, burst,
    # and overrides as (account, rate, burst) from RATE_LIMITS="acct1=2/5,acct2=10/20".
    rate_limiter_enabled: bool = True
    rate_limit_per_second: float = 5.0
    rate_limit_burst: int = 10
    rate_limits: tuple[tuple[str, float, int], ...] = ()
    # Fansly's API provider (or its simulator in dev): no URL, no Fansly gateway, and a
    # message to a Fansly fan is refused (422) rather than sent through another platform.
    # Its own limiter per creator account, apart from OnlyFans' (keys fancrm:rl:fansly:...).
    # Fansly publishes no limit: the default is a cautious guess, below OnlyFans' providers'.
    fansly_api_url: str | None = None
    fansly_api_key: str = "dev"
    fansly_timeout: float = 10.0
    fansly_rate_limit_per_second: float = 2.0
    fansly_rate_limit_burst: int = 5
    # /metrics is public (scraped from inside the network) unless this token is set; then it
    # wants "Authorization: Bearer <token>", and only then (or with CRM_METRICS_TENANT_LABELS
    # =true) are series labelled by tenant. Exporting by OTLP is set by the standard OTEL_*
    # variables; those and the labels are read by adapters/metrics.py and adapters/tracing.py.
    metrics_token: str | None = None
    # CloudWatch: the reference's metrics as Embedded Metric Format lines on stdout, under this
    # namespace. The Lambda always writes them; a long-running process when metrics_emf.
    cloudwatch_namespace: str = DEFAULT_CLOUDWATCH_NAMESPACE
    metrics_emf: bool = False
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
    # Reply suggestions' optional drafts (adapters/llm.py): an OpenAI-compatible chat
    # completions endpoint, used only when all three are set; past the timeout (seconds) the
    # retrieved replies answer alone.
    llm_url: str | None = None
    llm_api_key: str | None = None
    llm_model: str | None = None
    llm_timeout: float = 3.0
    # How often the churn worker retrains each account's model and rescores its fans.
    churn_retrain_seconds: float = 86_400.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "database_url": env.get("DATABASE_URL", ""),
            "redis_url": redis_url_from(env),
            "aws_region": aws_region_from(env),
            "sqs_queue_urls": sqs_queue_urls_from(env),
            "cloudwatch_namespace": cloudwatch_namespace_from(env),
            "metrics_emf": emf_wanted(env),
            "log_level": env.get("LOG_LEVEL", "INFO"),
            "log_json": env.get("LOG_FORMAT", "json") == "json",
            "master_key": env.get("CRM_MASTER_KEY") or None,
            "metrics_token": env.get("CRM_METRICS_TOKEN") or None,
            "platform_api_urls": tuple(
                url.strip().rstrip("/")
                for url in env.get("CRM_PLATFORM_API_URLS", "").split(",")
                if url.strip()
            ),
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
            ("fansly_api_url", "FANSLY_API_URL"),
            ("fansly_api_key", "FANSLY_API_KEY"),
            ("patreon_api_url", "PATREON_API_URL"),
            ("llm_url", "CRM_LLM_URL"),
            ("llm_api_key", "CRM_LLM_API_KEY"),
            ("llm_model", "CRM_LLM_MODEL"),
        ):
            if env.get(key):
                values[name] = env[key]
        for name, key, kind in (
            ("visibility_timeout", "SQS_VISIBILITY_TIMEOUT", float),
            ("max_receive_count", "SQS_MAX_RECEIVE_COUNT", int),
            ("high_priority_from", "CRM_HIGH_PRIORITY_FROM", int),
            ("onlyfans_timeout", "ONLYFANS_TIMEOUT", float),
            ("fansly_timeout", "FANSLY_TIMEOUT", float),
            ("fansly_rate_limit_per_second", "FANSLY_RATE_LIMIT_PER_SECOND", float),
            ("fansly_rate_limit_burst", "FANSLY_RATE_LIMIT_BURST", int),
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
            ("llm_timeout", "CRM_LLM_TIMEOUT", float),
            ("churn_retrain_seconds", "CRM_CHURN_RETRAIN_SECONDS", float),
        ):
            if key in env:
                values[name] = kind(env[key])
        if values["sqs_queue_urls"] and not env.get("CRM_QUEUE"):
            values["queue_backend"] = "sqs"
        if "RATE_LIMITER_ENABLED" in env:
            # Anything but an explicit "off" keeps the limiter on: a typo must not lift it.
            enabled = env["RATE_LIMITER_ENABLED"].strip().lower()
            values["rate_limiter_enabled"] = enabled not in _FALSE
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
        if not math.isfinite(settings.churn_retrain_seconds) or settings.churn_retrain_seconds <= 0:
            # 0 or nan would make the churn worker's wait return at once, or raise, forever.
            raise SystemExit("CRM_CHURN_RETRAIN_SECONDS must be a positive number of seconds")
        if not settings.database_url:
            raise SystemExit("DATABASE_URL is not set (or run `crm dev` for the local stack)")
        return settings

    @property
    def message_platforms(self) -> frozenset[str]:
        """The platforms a message can be sent on here: those with a gateway configured."""
        return frozenset({"onlyfans"} | ({"fansly"} if self.fansly_api_url else set()))

    def __repr__(self) -> str:
        # Settings get logged and printed; the master keys must never be.
        return f"Settings(database_url={self.database_url!r}, redis_url={self.redis_url!r})"


def redis_url_from(env: Mapping[str, str]) -> str | None:
    """REDIS_URL, else the reference's REDIS_ENDPOINT ("host:port", as ElastiCache shows it)
    made a URL: rediss:// (TLS) when REDIS_TLS=true, or when REDIS_TLS is unset and the host
    is an ElastiCache Serverless endpoint (those accept TLS only); redis:// otherwise."""
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    endpoint = env.get("REDIS_ENDPOINT", "").strip()
    if not endpoint:
        return None
    if "://" in endpoint:
        return endpoint  # a URL given under the endpoint's name: taken as it is
    parts = urlsplit(f"//{endpoint}")
    try:
        host, port = parts.hostname, parts.port or 6379
    except ValueError:
        host = None
    if not host or parts.path or parts.username:
        raise SystemExit(f"REDIS_ENDPOINT: expected host:port, got {endpoint!r}")
    tls = env.get("REDIS_TLS", "").strip().lower()
    if tls and tls not in _TRUE | _FALSE:
        raise SystemExit(f"REDIS_TLS: expected true or false, got {env['REDIS_TLS']!r}")
    use_tls = tls in _TRUE if tls else ".serverless." in host
    shown = f"[{host}]" if ":" in host else host
    return f"{'rediss' if use_tls else 'redis'}://{shown}:{port}/0"


def aws_region_from(env: Mapping[str, str]) -> str:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_AWS_REGION


# The reference's queue variables, and the key adapters/sqs.py knows each queue by. Its one
# queue is fancrm's normal (bulk) queue; the high-priority pair is fancrm's addition.
SQS_URL_VARIABLES = {
    "normal": "SQS_RATE_LIMITER_QUEUE_URL",
    "normal-dlq": "SQS_RATE_LIMITER_DLQ_URL",
    "high": "SQS_RATE_LIMITER_HIGH_QUEUE_URL",
    "high-dlq": "SQS_RATE_LIMITER_HIGH_DLQ_URL",
}


def sqs_queue_urls_from(env: Mapping[str, str]) -> dict[str, str]:
    urls = {key: env[name].strip() for key, name in SQS_URL_VARIABLES.items() if env.get(name)}
    if urls and len(urls) < len(SQS_URL_VARIABLES):
        missing = [name for key, name in SQS_URL_VARIABLES.items() if key not in urls]
        raise SystemExit(
            f"{', '.join(missing)} not set: the SQS_RATE_LIMITER_* queue URLs come as all four "
            "(high-priority and normal queues, each with its dead-letter queue) or none"
        )
    for key, url in urls.items():
        if urlsplit(url).scheme not in {"http", "https"}:
            raise SystemExit(f"{SQS_URL_VARIABLES[key]}: expected a queue URL, got {url!r}")
    return urls


def cloudwatch_namespace_from(env: Mapping[str, str]) -> str:
    return env.get("CLOUDWATCH_NAMESPACE", "").strip() or DEFAULT_CLOUDWATCH_NAMESPACE


def emf_wanted(env: Mapping[str, str]) -> bool:
    """EMF lines from a long-running process: METRICS_EMF=true, or CLOUDWATCH_NAMESPACE set
    (unless METRICS_EMF=false)."""
    asked = env.get("METRICS_EMF", "").strip().lower()
    if asked:
        return asked in _TRUE
    return bool(env.get("CLOUDWATCH_NAMESPACE", "").strip())


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
