"""The reference guide's deployment variables, read beside fancrm's own names, and which wins
when both are set (adapters/config.py's docstring)."""

from __future__ import annotations

import pytest

from adapters.config import Settings

DB = {"DATABASE_URL": "postgresql://x"}
QUEUES = "https://sqs.eu-west-1.amazonaws.com/123456789012"
URLS = {
    "SQS_RATE_LIMITER_QUEUE_URL": f"{QUEUES}/huntaze-rate-limiter-queue",
    "SQS_RATE_LIMITER_DLQ_URL": f"{QUEUES}/huntaze-rate-limiter-queue-dlq",
    "SQS_RATE_LIMITER_HIGH_QUEUE_URL": f"{QUEUES}/huntaze-rate-limiter-high",
    "SQS_RATE_LIMITER_HIGH_DLQ_URL": f"{QUEUES}/huntaze-rate-limiter-high-dlq",
}


def settings(**env: str) -> Settings:
    return Settings.from_env({**DB, **env})


def test_the_four_queue_urls_name_each_queue_and_select_sqs() -> None:
    configured = settings(**URLS)
    assert configured.sqs_queue_urls == {
        "normal": f"{QUEUES}/huntaze-rate-limiter-queue",
        "normal-dlq": f"{QUEUES}/huntaze-rate-limiter-queue-dlq",
        "high": f"{QUEUES}/huntaze-rate-limiter-high",
        "high-dlq": f"{QUEUES}/huntaze-rate-limiter-high-dlq",
    }
    assert configured.queue_backend == "sqs"


def test_without_queue_urls_the_queues_are_found_by_prefix_on_the_postgres_default() -> None:
    configured = settings()
    assert (configured.sqs_queue_urls, configured.queue_backend) == ({}, "postgres")
    assert configured.sqs_queue_prefix == "fancrm"


def test_queue_urls_win_over_a_prefix_and_crm_queue_still_chooses_the_backend() -> None:
    both = settings(**URLS, SQS_QUEUE_PREFIX="mine", CRM_QUEUE="postgres")
    assert both.sqs_queue_urls["high"].endswith("/huntaze-rate-limiter-high")
    assert both.queue_backend == "postgres"


@pytest.mark.parametrize("left_out", sorted(URLS))
def test_queue_urls_come_all_four_or_none(left_out: str) -> None:
    partial = {name: url for name, url in URLS.items() if name != left_out}
    with pytest.raises(SystemExit, match=left_out):
        settings(**partial)


def test_a_queue_url_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(SystemExit, match="SQS_RATE_LIMITER_DLQ_URL"):
        settings(**{**URLS, "SQS_RATE_LIMITER_DLQ_URL": "huntaze-rate-limiter-queue-dlq"})


@pytest.mark.parametrize(
    ("env", "url"),
    [
        (
            {"REDIS_ENDPOINT": "prod.abc123.use1.cache.amazonaws.com:6379"},
            "redis://prod.abc123.use1.cache.amazonaws.com:6379/0",
        ),
        (
            {"REDIS_ENDPOINT": "prod.abc123.use1.cache.amazonaws.com:6380", "REDIS_TLS": "true"},
            "rediss://prod.abc123.use1.cache.amazonaws.com:6380/0",
        ),
        ({"REDIS_ENDPOINT": "redis.internal"}, "redis://redis.internal:6379/0"),
        (
            {"REDIS_ENDPOINT": "crm-x1y2z3.serverless.use1.cache.amazonaws.com:6379"},
            "rediss://crm-x1y2z3.serverless.use1.cache.amazonaws.com:6379/0",
        ),
        (
            {
                "REDIS_ENDPOINT": "crm-x1y2z3.serverless.use1.cache.amazonaws.com:6379",
                "REDIS_TLS": "false",
            },
            "redis://crm-x1y2z3.serverless.use1.cache.amazonaws.com:6379/0",
        ),
        ({"REDIS_ENDPOINT": "[fd00::12]:6379"}, "redis://[fd00::12]:6379/0"),
        (
            {"REDIS_ENDPOINT": "rediss://:token@cache.internal:6379/2"},
            "rediss://:token@cache.internal:6379/2",
        ),
        ({}, None),
    ],
)
def test_redis_endpoint_becomes_a_url_with_tls_when_asked_or_serverless(
    env: dict[str, str], url: str | None
) -> None:
    assert settings(**env).redis_url == url


def test_redis_url_wins_over_redis_endpoint() -> None:
    both = settings(REDIS_URL="redis://127.0.0.1:6379/3", REDIS_ENDPOINT="elsewhere:6379")
    assert both.redis_url == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize(
    ("env", "wrong"),
    [
        ({"REDIS_ENDPOINT": "host:port"}, "REDIS_ENDPOINT"),
        ({"REDIS_ENDPOINT": "host:6379/0"}, "REDIS_ENDPOINT"),
        ({"REDIS_ENDPOINT": "host:6379", "REDIS_TLS": "maybe"}, "REDIS_TLS"),
    ],
)
def test_a_malformed_redis_endpoint_or_tls_flag_is_refused(env: dict[str, str], wrong: str) -> None:
    with pytest.raises(SystemExit, match=wrong):
        settings(**env)


@pytest.mark.parametrize(
    ("env", "region"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-west-1"),
        ({}, "us-east-1"),
    ],
)
def test_the_region_is_aws_region_then_aws_default_region(env: dict[str, str], region: str) -> None:
    assert settings(**env).aws_region == region


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("true", True), ("false", False), ("0", False), ("OFF", False), ("tru", True)],
)
def test_rate_limiter_enabled_is_off_only_when_said_so(value: str, enabled: bool) -> None:
    assert settings(RATE_LIMITER_ENABLED=value).rate_limiter_enabled is enabled
    assert settings().rate_limiter_enabled is True


@pytest.mark.parametrize(
    ("env", "namespace", "emf"),
    [
        ({}, "Huntaze/OnlyFans", False),
        ({"CLOUDWATCH_NAMESPACE": "Acme/Crm"}, "Acme/Crm", True),
        ({"METRICS_EMF": "true"}, "Huntaze/OnlyFans", True),
        ({"CLOUDWATCH_NAMESPACE": "Acme/Crm", "METRICS_EMF": "false"}, "Acme/Crm", False),
    ],
)
def test_cloudwatch_namespace_defaults_to_the_references_and_turns_emf_on(
    env: dict[str, str], namespace: str, emf: bool
) -> None:
    configured = settings(**env)
    assert (configured.cloudwatch_namespace, configured.metrics_emf) == (namespace, emf)
