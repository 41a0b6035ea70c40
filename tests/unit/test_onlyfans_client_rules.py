"""The gateway's rules without a network: the request it builds, how it classifies answers,
Retry-After, and the simulator's GCRA limiter. (Over real HTTP: tests/integration.)"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from adapters.onlyfans.client import OnlyFansClient, classify, parse_retry_after
from adapters.onlyfans.gcra import Gcra
from application.sending import PlatformMessage

NOW = 1_700_000_000.0


async def test_the_request_has_the_providers_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "pm_1"})

    client = OnlyFansClient(
        "https://api.example.test/", "key_1", transport=httpx.MockTransport(handler)
    )
    message = PlatformMessage(
        account="acct 1",
        recipient="fan/7",  # an id must never be able to change the route
        text="hello",
        price_cents=1500,
        media_urls=("https://cdn.example.test/a.jpg",),
        idempotency_key="msg-42",
    )
    async with asyncio.timeout(5), client:
        result = await client.send_message(message)
    assert result.outcome == "sent"
    assert result.platform_message_id == "pm_1"
    [request] = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/v1/accounts/acct%201/chats/fan%2F7/messages"
    assert request.headers["Authorization"] == "Bearer key_1"
    assert request.headers["Idempotency-Key"] == "msg-42"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "text": "hello",
        "price": 1500,
        "mediaUrls": ["https://cdn.example.test/a.jpg"],
    }


def response(status: int, body: object = None, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    return httpx.Response(status, content=content, headers=headers)


@pytest.mark.parametrize(
    ("body", "platform_id"),
    [({"id": "pm_1"}, "pm_1"), ({"id": 77}, "77"), ({"data": {"id": "pm_2"}}, "pm_2")],
)
def test_2xx_is_sent_with_the_platform_id(body: object, platform_id: str) -> None:
    result = classify(response(201, body))
    assert (result.outcome, result.platform_message_id) == ("sent", platform_id)


def test_a_2xx_without_a_readable_id_is_still_sent() -> None:
    """It was delivered: calling it a failure would invite a (deduplicated, useless) retry and
    a wrong status in the CRM."""
    for body in (b"not json", b"[]", b'{"ok": true}'):
        assert classify(response(200, body)).outcome == "sent"


def test_429_is_rate_limited_with_its_retry_after() -> None:
    result = classify(response(429, {"error": "slow down"}, **{"Retry-After": "7"}))
    assert (result.outcome, result.retry_after) == ("rate_limited", 7.0)
    assert result.reason == "429 Too Many Requests: slow down"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409, 425])
def test_5xx_and_not_now_4xx_are_retryable(status: int) -> None:
    result = classify(response(status, {"message": "busy"}))
    assert result.outcome == "retryable"
    assert result.retry_after is None
    assert result.reason is not None
    assert result.reason.startswith(f"{status} ")


def test_a_retryable_answer_keeps_its_retry_after() -> None:
    assert classify(response(503, None, **{"Retry-After": "30"})).retry_after == 30.0


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, {"error": {"code": "fan_not_found", "message": "fan 9 not found"}},
         "404 Not Found: fan 9 not found"),
        (403, {"error": {"code": "fan_blocked"}}, "403 Forbidden: fan_blocked"),
        (400, {"message": "price too low"}, "400 Bad Request: price too low"),
        (422, {"error": "bad media"}, "422 Unprocessable Entity: bad media"),
        (401, b"nope", "401 Unauthorized: nope"),
        (410, None, "410 Gone"),
    ],
)  # fmt: skip
def test_other_4xx_are_permanent_with_the_status_and_the_providers_message(
    status: int, body: object, reason: str
) -> None:
    result = classify(response(status, body))
    assert (result.outcome, result.reason) == ("permanent", reason)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-4", 0.0),
        (None, 1.0),
        ("", 1.0),
        ("soon", 1.0),
        ("inf", 1.0),
        ("nan", 1.0),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)
    assert parse_retry_after(later, now=NOW) == pytest.approx(90.0)
    earlier = format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True)
    assert parse_retry_after(earlier, now=NOW) == 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_gcra_allows_a_burst_then_the_sustained_rate() -> None:
    clock = Clock()
    limiter = Gcra(rate=2.0, burst=3, clock=clock)
    assert [limiter.try_acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire("a") == pytest.approx(0.5)
    assert limiter.try_acquire("b") == 0.0, "accounts are limited separately"
    clock.now += 0.5
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") == pytest.approx(0.5)


def test_gcra_refusals_do_not_push_the_key_back() -> None:
    clock = Clock()
    limiter = Gcra(rate=1.0, burst=1, clock=clock)
    assert limiter.try_acquire("a") == 0.0
    for _ in range(5):
        assert limiter.try_acquire("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.try_acquire("a") == 0.0


def test_gcra_refills_to_the_burst_and_no_further() -> None:
    clock = Clock()
    limiter = Gcra(rate=10.0, burst=2, clock=clock)
    clock.now += 3600
    assert [limiter.try_acquire("a") > 0 for _ in range(3)] == [False, False, True]
