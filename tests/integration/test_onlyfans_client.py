"""The OnlyFans client against the simulator, over real HTTP on 127.0.0.1.

Each test starts a simulator of its own (a free port, its own thread and loop), so its
deliveries, counters and rate limits belong to that test alone.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, Response, post

from adapters.onlyfans.client import OnlyFansClient
from adapters.onlyfans.server import BackgroundServer
from adapters.onlyfans.signing import SIGNATURE_HEADER, verify
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from application.sending import PlatformMessage, PlatformSendResult

API_KEY = "sim-key"
StartSimulator = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    started: list[Simulator] = []

    async def start(**config: Any) -> Simulator:
        simulator = Simulator(SimulatorConfig(api_key=API_KEY, **config))
        await asyncio.to_thread(simulator.start)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        await asyncio.to_thread(simulator.stop)


def client_for(simulator: Simulator, *, timeout: float = 5.0) -> OnlyFansClient:
    return OnlyFansClient(simulator.url, API_KEY, timeout=timeout)


def message(key: str | None = None, **fields: Any) -> PlatformMessage:
    values: dict[str, Any] = {"account": "acct-1", "recipient": "fan-1", "text": "hi there"}
    values.update(fields)
    return PlatformMessage(idempotency_key=key or uuid.uuid4().hex, **values)


async def test_a_message_is_sent_and_delivered_once_with_its_platform_id(
    start_simulator: StartSimulator,
) -> None:
    simulator = await start_simulator()
    sent = message(
        price_cents=1500, media_urls=("https://cdn.example.test/1.jpg",), text="new set 🔥"
    )
    async with asyncio.timeout(10), client_for(simulator) as client:
        result = await client.send_message(sent)
    [delivery] = simulator.deliveries()
    assert result == PlatformSendResult(
        outcome="sent", platform_message_id=delivery.platform_message_id
    )
    assert (delivery.account, delivery.recipient, delivery.text) == (
        "acct-1",
        "fan-1",
        "new set 🔥",
    )
    assert delivery.price_cents == 1500
    assert delivery.media_urls == ("https://cdn.example.test/1.jpg",)
    assert delivery.idempotency_key == sent.idempotency_key
    assert simulator.requests == {200: 1}


async def test_a_wrong_api_key_is_permanent(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator()
    async with asyncio.timeout(10), OnlyFansClient(simulator.url, "wrong") as client:
        result = await client.send_message(message())
    assert result.outcome == "permanent"
    assert result.reason == "401 Unauthorized: missing or invalid API key"
    assert simulator.deliveries() == []


async def test_a_repeated_idempotency_key_answers_the_first_result_and_delivers_once(
    start_simulator: StartSimulator,
) -> None:
    simulator = await start_simulator()
    sent = message()
    async with asyncio.timeout(10), client_for(simulator) as client:
        results = [await client.send_message(sent) for _ in range(3)]
    assert {r.outcome for r in results} == {"sent"}
    assert len({r.platform_message_id for r in results}) == 1
    assert simulator.delivered_count(sent.idempotency_key) == 1
    assert simulator.requests == {200: 3}


async def test_ten_concurrent_copies_of_a_key_deliver_once(start_simulator: StartSimulator) -> None:
    # Some latency, so that all ten are in flight together inside the simulator.
    simulator = await start_simulator(latency=0.05)
    sent = message()
    async with asyncio.timeout(10), client_for(simulator) as client:
        results = await asyncio.gather(*(client.send_message(sent) for _ in range(10)))
    assert {r.outcome for r in results} == {"sent"}
    assert len({r.platform_message_id for r in results}) == 1
    assert simulator.delivered_count(sent.idempotency_key) == 1


async def test_a_key_reused_for_another_message_is_refused(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator()
    async with asyncio.timeout(10), client_for(simulator) as client:
        assert (await client.send_message(message("k-1", text="one"))).outcome == "sent"
        result = await client.send_message(message("k-1", text="two"))
    assert result.outcome == "permanent"
    assert result.reason is not None
    assert result.reason.startswith("422 ")
    assert simulator.delivered_count("k-1") == 1


async def test_one_key_from_two_accounts_is_two_messages_each_delivered_once(
    start_simulator: StartSimulator,
) -> None:
    simulator = await start_simulator()
    async with asyncio.timeout(10), client_for(simulator) as client:
        first = await client.send_message(message("k-shared", account="acct-1", text="one"))
        second = await client.send_message(message("k-shared", account="acct-2", text="two"))
        again = await client.send_message(message("k-shared", account="acct-2", text="two"))
    assert (first.outcome, second.outcome, again.outcome) == ("sent", "sent", "sent")
    assert first.platform_message_id != second.platform_message_id
    assert again.platform_message_id == second.platform_message_id
    delivered = {(d.account, d.text) for d in simulator.deliveries()}
    assert delivered == {("acct-1", "one"), ("acct-2", "two")}
    assert simulator.delivered_count("k-shared") == 2


@pytest.mark.parametrize("http_date", [False, True])
async def test_429_is_rate_limited_with_retry_after_and_delivers_nothing(
    start_simulator: StartSimulator, http_date: bool
) -> None:
    # One token, refilled every 2 s: the second send is refused for about 2 s.
    simulator = await start_simulator(rate_per_second=0.5, burst=1, retry_after_http_date=http_date)
    refused = message()
    async with asyncio.timeout(10), client_for(simulator) as client:
        assert (await client.send_message(message())).outcome == "sent"
        result = await client.send_message(refused)
    assert result.outcome == "rate_limited"
    assert result.retry_after is not None
    if http_date:  # a date to the second, read a moment later
        assert 1.0 <= result.retry_after <= 3.0
    else:
        assert result.retry_after == 2.0
    assert result.reason == "429 Too Many Requests: too many requests for this account"
    assert simulator.delivered_count(refused.idempotency_key) == 0
    assert simulator.requests == {200: 1, 429: 1}


async def test_5xx_is_retryable_and_delivers_nothing(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator(error_rate=1.0)
    async with asyncio.timeout(10), client_for(simulator) as client:
        results = [await client.send_message(message()) for _ in range(5)]
    assert {r.outcome for r in results} == {"retryable"}
    assert all(r.reason and r.reason[:3] in {"500", "502", "503"} for r in results)
    assert simulator.deliveries() == []


async def test_a_timeout_is_retryable(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator(
        timeout_rate=1.0, timeout_seconds=1.0, timeout_delivery_rate=0
    )
    async with asyncio.timeout(10), client_for(simulator, timeout=0.2) as client:
        started = time.monotonic()
        result = await client.send_message(message())
        elapsed = time.monotonic() - started
    assert result.outcome == "retryable"
    assert result.reason is not None
    assert result.reason.startswith("timeout, may have been delivered: ReadTimeout")
    assert elapsed < 0.9, "the client gave up at its own timeout, not the server's"
    assert simulator.deliveries() == []


async def test_a_slow_answer_past_the_client_timeout_is_retryable(
    start_simulator: StartSimulator,
) -> None:
    simulator = await start_simulator(latency=1.0)
    async with asyncio.timeout(10), client_for(simulator, timeout=0.2) as client:
        result = await client.send_message(message())
    assert result.outcome == "retryable"


async def test_a_retry_after_a_delivered_then_timed_out_send_does_not_deliver_twice(
    start_simulator: StartSimulator,
) -> None:
    """The ambiguous case: the provider delivered, then never answered. The retry, with the
    same key, is answered with the original result."""
    simulator = await start_simulator(
        timeout_rate=1.0, timeout_seconds=1.0, timeout_delivery_rate=1
    )
    sent = message()
    async with asyncio.timeout(10), client_for(simulator, timeout=0.2) as client:
        first = await client.send_message(sent)
        assert first.outcome == "retryable"
        assert simulator.delivered_count(sent.idempotency_key) == 1, "delivered nonetheless"
        retry = await client.send_message(sent)
    [delivery] = simulator.deliveries()
    assert retry == PlatformSendResult(
        outcome="sent", platform_message_id=delivery.platform_message_id
    )
    assert simulator.delivered_count(sent.idempotency_key) == 1


async def test_an_unknown_fan_is_permanent(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator(unknown_recipients=frozenset({"ghost"}))
    async with asyncio.timeout(10), client_for(simulator) as client:
        result = await client.send_message(message(recipient="ghost"))
    assert result == PlatformSendResult(
        outcome="permanent", reason="404 Not Found: fan ghost not found"
    )
    assert simulator.deliveries() == []


async def test_a_random_permanent_error_is_a_404(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator(permanent_error_rate=1.0)
    async with asyncio.timeout(10), client_for(simulator) as client:
        result = await client.send_message(message(recipient="fan-9"))
    assert result == PlatformSendResult(
        outcome="permanent", reason="404 Not Found: fan fan-9 not found"
    )


async def test_a_fan_who_blocked_the_account_is_permanent(start_simulator: StartSimulator) -> None:
    simulator = await start_simulator(blocked_recipients=frozenset({"fan-2"}))
    async with asyncio.timeout(10), client_for(simulator) as client:
        blocked = await client.send_message(message(recipient="fan-2"))
        other = await client.send_message(message(recipient="fan-3"))
    assert blocked == PlatformSendResult(
        outcome="permanent", reason="403 Forbidden: fan fan-2 has blocked this account"
    )
    assert other.outcome == "sent"
    assert [d.recipient for d in simulator.deliveries()] == ["fan-3"]


def dead_port() -> int:
    """A port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retryable() -> None:
    client = OnlyFansClient(f"http://127.0.0.1:{dead_port()}", API_KEY, timeout=2.0)
    async with asyncio.timeout(10), client:
        result = await client.send_message(message())
    assert result.outcome == "retryable"
    assert result.reason is not None
    assert result.reason.startswith("not sent: ConnectError")


async def test_a_burst_for_one_account_is_cut_at_the_limit_and_spares_the_others(
    start_simulator: StartSimulator,
) -> None:
    # Refilling one token per 2 s: nothing refills during the test.
    simulator = await start_simulator(rate_per_second=0.5, burst=5)
    async with asyncio.timeout(10), client_for(simulator) as client:
        busy = await asyncio.gather(*(client.send_message(message()) for _ in range(12)))
        other = await asyncio.gather(
            *(client.send_message(message(account="acct-2")) for _ in range(5))
        )
    outcomes = [r.outcome for r in busy]
    assert outcomes.count("sent") == 5
    assert outcomes.count("rate_limited") == 7
    assert all(r.retry_after and r.retry_after >= 1 for r in busy if r.outcome == "rate_limited")
    assert {r.outcome for r in other} == {"sent"}
    accounts = [d.account for d in simulator.deliveries()]
    assert (accounts.count("acct-1"), accounts.count("acct-2")) == (5, 5)


# -- webhooks -------------------------------------------------------------------------------


class Receiver:
    """Our side of the webhooks: records what arrives, and can fail the first few."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        self.fail_first = fail_first
        self._lock = threading.Lock()

        @post("/api/onlyfans/webhooks", status_code=200)
        async def webhook(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = await request.body()
            with self._lock:
                self.received.append((body, request.headers.get(SIGNATURE_HEADER)))
                failing = len(self.received) <= self.fail_first
            return Response(b"", status_code=500 if failing else 200)

        self.server = BackgroundServer(Litestar([webhook], openapi_config=None))

    def events(self) -> list[tuple[dict[str, Any], bytes, str | None]]:
        with self._lock:
            return [(msgspec.json.decode(body), body, header) for body, header in self.received]

    async def wait_for(self, count: int) -> list[tuple[dict[str, Any], bytes, str | None]]:
        while len(events := self.events()) < count:  # noqa: ASYNC110 - filled by another thread
            await asyncio.sleep(0.02)
        return events


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await asyncio.to_thread(receiver.server.start)
    yield receiver
    await asyncio.to_thread(receiver.server.stop)


WEBHOOKS = {
    "webhook_secrets": {"acct-1": "whsec_1", "acct-2": "whsec_2"},
    "read_probability": 1.0,
    "purchase_probability": 1.0,
    "reply_probability": 1.0,
    "webhook_delay": 0.0,
    "webhook_delay_jitter": 0.0,
}


async def test_a_delivery_is_followed_by_signed_webhooks_that_verify(
    start_simulator: StartSimulator, receiver: Receiver
) -> None:
    simulator = await start_simulator(webhook_url=receiver.server.url, **WEBHOOKS)
    priced = message(price_cents=1200, account="acct-1", recipient="fan-5")
    async with asyncio.timeout(10):
        async with client_for(simulator) as client:
            result = await client.send_message(priced)
        events = await receiver.wait_for(3)

    assert [e["type"] for e, _, _ in events] == [
        "message.read",
        "message.purchased",
        "message.received",
    ]
    read, purchased, reply = (event for event, _, _ in events)
    assert len({e["id"] for e, _, _ in events}) == 3, "every event has its own id"
    assert all(e["account"] == "acct-1" and e["createdAt"].endswith("Z") for e, _, _ in events)
    assert read["data"]["messageId"] == priced.idempotency_key
    assert read["data"]["platformMessageId"] == result.platform_message_id
    assert purchased["data"]["messageId"] == priced.idempotency_key
    assert purchased["data"]["amountCents"] == 1200
    assert reply["data"]["fanId"] == "fan-5"
    assert reply["data"]["text"]
    assert reply["data"]["platformMessageId"] not in {None, result.platform_message_id}

    now = time.time()
    for _, body, header in events:
        assert header is not None
        assert verify("whsec_1", body, header, now)
        assert not verify("whsec_1", body.replace(b"acct-1", b"acct-9"), header, now)
        assert not verify("whsec_2", body, header, now), "another account's secret"
        assert not verify("whsec_1", body, header, now + 301), "older than five minutes"


async def test_a_free_message_has_no_purchase_and_an_account_without_a_secret_no_webhooks(
    start_simulator: StartSimulator, receiver: Receiver
) -> None:
    simulator = await start_simulator(webhook_url=receiver.server.url, **WEBHOOKS)
    async with asyncio.timeout(10):
        async with client_for(simulator) as client:
            await client.send_message(message(account="acct-unregistered"))
            await client.send_message(message(account="acct-2", price_cents=0))
        events = await receiver.wait_for(2)
        await asyncio.sleep(0.3)  # time enough for anything else to arrive
    assert [(e["type"], e["account"]) for e, _, _ in receiver.events()] == [
        ("message.read", "acct-2"),
        ("message.received", "acct-2"),
    ]
    assert all(verify("whsec_2", body, header, time.time()) for _, body, header in events)


async def test_a_refused_webhook_is_retried_with_the_same_event_id(
    start_simulator: StartSimulator, receiver: Receiver
) -> None:
    receiver.fail_first = 1
    simulator = await start_simulator(
        webhook_url=receiver.server.url,
        **{**WEBHOOKS, "purchase_probability": 0.0, "reply_probability": 0.0},
    )
    async with asyncio.timeout(10):
        async with client_for(simulator) as client:
            await client.send_message(message())
        events = await receiver.wait_for(2)
        # The receiver holds the second post before the simulator has read its answer.
        while len(simulator.webhook_attempts()) < 2:
            await asyncio.sleep(0.02)
    first, second = (event for event, _, _ in events)
    assert first == second, "the same event, posted again"
    assert all(verify("whsec_1", body, header, time.time()) for _, body, header in events)
    assert [a.status for a in simulator.webhook_attempts()] == [500, 200]
