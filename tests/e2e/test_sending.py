"""Sending end to end: a message posted to the API goes through the outbox relay, a real queue
(Postgres, or SQS on moto's server) and the sender to the OnlyFans simulator over real HTTP,
once; the per-account limit holds across sender processes; a reply overtakes a backlog; the
Lambda handler answers partial batch failures; a message throttled on its last receive must
end failed, not silently dead-lettered (the sender's dead-letter sweep records them).

Each test builds its own container on a fresh database, so the relay and the pollers only see
that test's messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiobotocore.session
import msgspec
import pytest
from aws_lambda_powertools import Logger

from adapters import metrics
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.redis import DisabledRateLimiter, GcraRateLimiter
from application import delivery_service
from application.queue import ReceivedMessage
from tests.support.lambda_context import LambdaContext
from tests.support.moto import REGION
from tests.support.sending import (
    ARN_PREFIX,
    SenderProcess,
    Stack,
    aws_env,
    bulk_messages,
    embedded_redis,
    fans_with_conversations,
    logged,
    new_tenant,
    open_stack,
    window_excess,
)
from worker import sender as sender_module
from worker import sender_lambda
from worker.relay import Relay
from worker.sender import Sender, build_sender, run_sender

MEDIA = "https://cdn.example.com/vault/set-7.jpg"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@contextlib.asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(**config)) as started:
        yield started


@contextlib.asynccontextmanager
async def pollers(stack: Stack, concurrency: int = 1) -> AsyncIterator[Sender]:
    """The sender as `crm worker sender` builds it (build_sender: the gateway and limiter of
    the stack's settings) polling the stack's queue from a task of this loop, ``concurrency``
    pollers; stopped, and awaited, on leaving."""
    sender, close = await build_sender(stack.container)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_sender(sender, stack.container.queue, stop, concurrency=concurrency)
    )
    try:
        yield sender
    finally:
        stop.set()
        try:
            async with asyncio.timeout(15):
                await task
        finally:
            await close()


async def relay_all(stack: Stack) -> None:
    relay = Relay(stack.container.outbox, stack.container.queue, stack.container.events)
    while await stack.container.outbox.pending():
        await relay.run_once()


async def until(condition: Callable[[], Awaitable[bool]], interval: float = 0.02) -> None:
    """Poll an (async) condition; callers bound the wait with asyncio.timeout."""
    while True:
        if await condition():
            return
        await asyncio.sleep(interval)


async def queues_empty(stack: Stack) -> bool:
    for name in ("high", "normal"):
        stats = await stack.container.queue.stats(name)
        if (stats.visible, stats.in_flight, stats.dead_letters) != (0, 0, 0):
            return False
    return True


# --- 1. the happy path, on both queues --------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["postgres", "sqs"])
async def test_a_posted_message_is_delivered_once_and_shows_sent(
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    fresh_database_url: str,
    redis_url: str,
) -> None:
    queue_settings: dict[str, object] = {}
    if backend == "sqs":
        endpoint = request.getfixturevalue("sqs_endpoint_url")
        for name, value in aws_env().items():
            monkeypatch.setenv(name, value)
        queue_settings = {
            "queue_backend": "sqs",
            "sqs_endpoint_url": endpoint,
            "sqs_queue_prefix": f"e2e{uuid.uuid4().hex[:12]}",
        }
    async with (
        asyncio.timeout(45),
        simulator() as platform,
        open_stack(
            fresh_database_url,
            onlyfans_api_url=platform.url,
            redis_url=redis_url,
            **queue_settings,
        ) as stack,
    ):
        fan_id = await stack.new_fan("Ann")
        reply = await stack.send(recipientId=fan_id, content="Hi Ann", priority=9)
        ppv = await stack.send(
            recipientId=fan_id,
            content="The new set, just for you",
            priceCents=1500,
            mediaUrls=[MEDIA],
            priority=3,
        )
        await relay_all(stack)
        for queue in ("high", "normal"):
            assert (await stack.container.queue.stats(queue)).visible == 1

        async with pollers(stack) as sender:
            assert isinstance(sender.limiter, GcraRateLimiter)

            async def both_sent() -> bool:
                last = [(await stack.event_types(m["messageId"]))[-1] for m in (reply, ppv)]
                return last == ["MessageSent", "MessageSent"]

            await until(both_sent)
            await until(lambda: queues_empty(stack))

        by_key = {d.idempotency_key: d for d in platform.deliveries()}
        assert len(platform.deliveries()) == 2
        for accepted in (reply, ppv):
            assert platform.delivered_count(accepted["messageId"]) == 1
        delivered = by_key[reply["messageId"]]
        assert (delivered.account, delivered.recipient) == (stack.tenant, str(fan_id))
        assert (delivered.text, delivered.price_cents, delivered.media_urls) == ("Hi Ann", 0, ())
        delivered = by_key[ppv["messageId"]]
        assert (delivered.text, delivered.price_cents, delivered.media_urls) == (
            "The new set, just for you",
            1500,
            (MEDIA,),
        )
        assert platform.requests == Counter({200: 2})

        for accepted in (reply, ppv):
            assert await stack.event_types(accepted["messageId"]) == [
                "MessageQueued",
                "MessageDispatched",
                "MessageSent",
            ]
            view = await stack.message_view(accepted["messageId"])
            assert view["status"] == "sent"
            assert view["sentAt"] is not None
            assert view["failureReason"] is None
        assert await queues_empty(stack)


# --- 2. one account's limit, shared by sender processes ---------------------------------------

RATE, BURST, MESSAGES = 20.0, 5, 150
# The sender's log lines for a record after it took its token: each names the grant (token_at).
OUTCOME_LINES = (
    "message sent",
    "platform rate limited",
    "send failed, will retry",
    "message failed",
)


class Answers:
    """Every answer of the simulator's send endpoint, timed: (time.time(), account, status),
    for the record only: those times carry the network's and the scheduler's jitter."""

    def __init__(self, platform: Simulator) -> None:
        self.seen: list[tuple[float, str, int]] = []
        send = platform.state.send

        async def timed(account: str, recipient: str, headers: Any, raw: bytes) -> Any:
            answer = await send(account, recipient, headers, raw)
            self.seen.append((time.time(), account, answer.status))
            return answer

        platform.state.send = timed  # type: ignore[method-assign]

    def of(self, account: str) -> list[tuple[float, int]]:
        return [(at, status) for at, who, status in self.seen if who == account]


@pytest.mark.timeout(90)
async def test_sender_processes_share_the_accounts_limit_and_deliver_each_message_once(
    fresh_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with (
        asyncio.timeout(75),
        simulator(rate_per_second=RATE, burst=BURST) as platform,
        open_stack(fresh_database_url, redis_url=redis_url) as stack,
    ):
        answers = Answers(platform)
        warm = dataclasses.replace(stack, tenant=new_tenant())
        warm_fans = await fans_with_conversations(warm, 2)
        fans = await fans_with_conversations(stack, 10)
        env = {
            "DATABASE_URL": fresh_database_url,
            "REDIS_URL": redis_url,
            "ONLYFANS_API_URL": platform.url,
            "RATE_LIMITER_ENABLED": "true",
            "RATE_LIMIT_PER_SECOND": str(RATE),
            "RATE_LIMIT_BURST": str(BURST),
            "CRM_QUEUE": "postgres",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
        # Two OS processes, four pollers each (`crm worker sender`'s default): eight pollers
        # taking tokens from one Redis key per account.
        workers = [SenderProcess(tmp_path / f"sender-{i}.log", **env) for i in range(2)]
        try:
            # Warm up on another account until both processes have sent: a process's first
            # sends are slow (imports, connections), which would bunch its early requests up
            # with the other's at the platform.
            warm_ids: list[str] = []

            async def warm_sent() -> bool:
                return await warm.count_events("MessageSent") == len(warm_ids)

            while min(w.count_logged("message sent") for w in workers) == 0:
                for w in workers:
                    assert w.process.poll() is None, "\n".join(w.log_lines())
                warm_ids += await bulk_messages(warm, warm_fans, 10)
                await relay_all(stack)
                await until(warm_sent, interval=0.1)

            message_ids = await bulk_messages(stack, fans, MESSAGES)
            await relay_all(stack)

            async def all_sent() -> bool:
                return await stack.count_events("MessageSent") == MESSAGES

            await until(all_sent, interval=0.2)
            await until(lambda: queues_empty(stack), interval=0.2)
        finally:
            codes = [await asyncio.to_thread(w.stop) for w in workers]
        logs = "\n".join(line for w in workers for line in w.log_lines()[-20:])
        assert codes == [0, 0], logs

        # Each message on the platform once, 429'd ones included (redelivered, then sent).
        deliveries = [d for d in platform.deliveries() if d.account == stack.tenant]
        assert Counter(d.idempotency_key for d in deliveries) == Counter(message_ids)
        lines = [w.log_lines() for w in workers]
        sent_by = [logged(process, "message sent", tenant=stack.tenant) for process in lines]
        sent = {entry["message_id"]: entry for process in sent_by for entry in process}
        assert sum(len(process) for process in sent_by) == MESSAGES == len(sent)
        assert set(sent) == set(message_ids)
        assert min(len(process) for process in sent_by) > 0, "one process sent everything"
        outcomes = [
            entry
            for process in lines
            for event in OUTCOME_LINES
            for entry in logged(process, event, tenant=stack.tenant)
        ]
        assert all("token_at" in entry for entry in outcomes), "an outcome without its token"
        # A 429 (the platform's bucket runs on arrivals, which jitter) puts the record back:
        # it was sent later, on a token of its own.
        for refused in (e for e in outcomes if e["event"] == "platform rate limited"):
            later = sent[refused["message_id"]]["token_at"]
            assert datetime.fromisoformat(later) > datetime.fromisoformat(refused["token_at"])

        # What the limiter promises, judged on its own clock: every token it granted the
        # account, from either process, within burst + rate*t of every window. Each outcome
        # line of a record that took a token names the grant's Redis time (token_at); a record
        # logging two lines (failed on its last receive) names the same grant twice.
        grants = {(entry["message_id"], entry["token_at"]) for entry in outcomes}
        grant_times = [datetime.fromisoformat(at) for _, at in grants]
        excess = window_excess(grant_times, RATE, BURST)
        assert excess <= 1e-6, f"a window held {excess:.6f} grants over burst + rate*t"

        # Seen at the platform, the same sends carry the network's and the scheduler's jitter
        # (and so do its 429s): shown, not judged.
        seen = answers.of(stack.tenant)
        arrivals = [datetime.fromtimestamp(at, UTC) for at, _ in seen]
        spread = (deliveries[-1].delivered_at - deliveries[0].delivered_at).total_seconds()
        print(
            f"\n{len(grants)} grants, worst window {excess:+.6f}; platform answers "
            f"{dict(Counter(status for _, status in seen))}, refused at "
            f"{[round(at - seen[0][0], 3) for at, status in seen if status != 200]} s; worst "
            f"window of arrivals {window_excess(arrivals, RATE, BURST):+.2f}, of deliveries "
            f"{window_excess([d.delivered_at for d in deliveries], RATE, BURST):+.2f}; "
            f"deliveries spread over {spread:.2f} s; sent per process "
            f"{[len(process) for process in sent_by]}"
        )


# --- 3. a reply overtakes a campaign's backlog ------------------------------------------------

BACKLOG = 2000


@pytest.mark.timeout(90)
async def test_a_reply_overtakes_a_backlog_of_bulk_messages(fresh_database_url: str) -> None:
    async with (
        asyncio.timeout(75),
        simulator(latency=0.02) as platform,
        open_stack(
            fresh_database_url, onlyfans_api_url=platform.url, rate_limiter_enabled=False
        ) as stack,
    ):
        fans = await fans_with_conversations(stack, 20)
        backlog = await bulk_messages(stack, fans, BACKLOG, priority=5, via_outbox=False)
        assert (await stack.container.queue.stats("normal")).visible == BACKLOG
        fan_id = await stack.new_fan("Replying fan")

        async with pollers(stack, concurrency=1) as sender:
            assert isinstance(sender.limiter, DisabledRateLimiter)

            async def busy() -> bool:
                return len(platform.deliveries()) >= 50

            await until(busy)  # the sender is well into the backlog when the reply comes
            before = len(platform.deliveries())
            asked = datetime.now(UTC)
            reply = await stack.send(recipientId=fan_id, content="Sure, tonight!", priority=9)
            await relay_all(stack)

            async def delivered() -> bool:
                return platform.delivered_count(reply["messageId"]) == 1

            async with asyncio.timeout(10):
                await until(delivered, interval=0.01)

        deliveries = platform.deliveries()
        [answer] = [d for d in deliveries if d.idempotency_key == reply["messageId"]]
        took = (answer.delivered_at - asked).total_seconds()
        ahead = sum(1 for d in deliveries if d.delivered_at < answer.delivered_at)
        assert took < 5, f"the reply took {took:.2f} s behind the backlog"
        # Only what the poller held when the reply came (a batch or two) went before it; most
        # of the backlog was still waiting.
        assert ahead - before < 100, f"{ahead - before} bulk messages went first"
        assert ahead < BACKLOG / 10
        keys = Counter(d.idempotency_key for d in deliveries)
        assert max(keys.values()) == 1, "a message was delivered twice"
        assert set(keys) <= {*backlog, reply["messageId"]}
        assert (await stack.event_types(reply["messageId"]))[-1] == "MessageSent"


# --- 4. the Lambda handler --------------------------------------------------------------------


class LambdaRuntime:
    """One Lambda execution environment: every invocation on the same thread, as the runtime
    does, so the handler's kept loop, pool and clients live on between invocations."""

    def __init__(self) -> None:
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    async def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, sender_module.lambda_handler, event, LambdaContext()
        )

    async def end(self) -> None:
        """The environment is recycled: close what the handler built, forget it."""

        def close() -> None:
            kept = sender_lambda._kept
            loop = kept.get("loop")
            if loop is not None:
                loop.run_until_complete(sender_lambda.close_kept())
                loop.close()
            kept.clear()

        await asyncio.get_running_loop().run_in_executor(self._thread, close)

    def shutdown(self) -> None:
        self._thread.shutdown()


def lambda_environment(
    monkeypatch: pytest.MonkeyPatch, database_url: str, sqs_endpoint_url: str
) -> str:
    """What the Lambda's configuration reads, for a fresh execution environment on queues of
    their own; their prefix."""
    prefix = f"e2e{uuid.uuid4().hex[:12]}"
    for name, value in {
        **aws_env(),
        "DATABASE_URL": database_url,
        "SQS_ENDPOINT_URL": sqs_endpoint_url,
        "SQS_QUEUE_PREFIX": prefix,
        "RATE_LIMITER_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REDIS_URL", raising=False)
    # The handler configures logging for a process of its own; here it would take over the
    # test process's root logger.
    monkeypatch.setattr(
        sender_lambda, "configure_lambda_logging", lambda *args, **kwargs: Logger(service="t")
    )
    monkeypatch.setattr(sender_lambda, "_kept", {})
    monkeypatch.setattr(metrics, "_emf", [])
    return prefix


def sqs_event(prefix: str, queue: str, received: list[ReceivedMessage]) -> dict[str, Any]:
    """What Lambda's SQS event source hands the function for these messages."""
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt,
                "body": m.body,
                "attributes": {"ApproximateReceiveCount": str(m.receive_count)},
                "messageAttributes": {
                    name: {"stringValue": value, "dataType": "String"}
                    for name, value in m.attributes.items()
                },
                "eventSource": "aws:sqs",
                "eventSourceARN": f"{ARN_PREFIX}{prefix}-{queue}",
                "awsRegion": REGION,
            }
            for m in received
        ]
    }


def message_id_of(received: ReceivedMessage) -> str:
    return str(msgspec.json.decode(received.body)["messageId"])


@pytest.mark.timeout(60)
async def test_the_lambda_handler_reports_partial_batch_failures(
    sqs_endpoint_url: str, monkeypatch: pytest.MonkeyPatch, fresh_database_url: str
) -> None:
    prefix = lambda_environment(monkeypatch, fresh_database_url, sqs_endpoint_url)
    runtime = LambdaRuntime()
    try:
        async with (
            asyncio.timeout(50),
            open_stack(
                fresh_database_url,
                queue_backend="sqs",
                sqs_endpoint_url=sqs_endpoint_url,
                sqs_queue_prefix=prefix,
            ) as stack,
        ):
            queue = stack.container.queue
            ok_fan, blocked_fan, flaky_fan = [await stack.new_fan(n) for n in ("A", "B", "C")]
            ok = await stack.send(recipientId=ok_fan, content="See you", priority=9)
            blocked = await stack.send(recipientId=blocked_fan, content="Hello?", priority=9)
            flaky = await stack.send(recipientId=flaky_fan, content="New set", priceCents=900)
            await relay_all(stack)
            high = await queue.receive("high")
            [normal] = await queue.receive("normal")
            assert {message_id_of(m) for m in high} == {ok["messageId"], blocked["messageId"]}

            async with (
                simulator(blocked_recipients=frozenset({str(blocked_fan)})) as platform,
                simulator(error_rate=1.0) as failing,
            ):
                # One batch: one sent, one refused for good; neither is left on the queue.
                monkeypatch.setenv("ONLYFANS_API_URL", platform.url)
                assert await runtime.invoke(sqs_event(prefix, "high", high)) == {
                    "batchItemFailures": []
                }
                assert platform.delivered_count(ok["messageId"]) == 1
                [delivered] = platform.deliveries()
                assert (delivered.recipient, delivered.text) == (str(ok_fan), "See you")
                assert platform.requests == Counter({200: 1, 403: 1})
                assert (await stack.event_types(ok["messageId"]))[-1] == "MessageSent"
                assert (await stack.event_types(blocked["messageId"]))[-1] == "MessageFailed"
                view = await stack.message_view(blocked["messageId"])
                assert view["status"] == "failed"
                assert "403" in view["failureReason"]
                await queue.delete("high", [m.receipt for m in high])  # as Lambda does

                # The same record again (SQS delivers at least once): dropped unsent.
                again = [
                    msgspec.structs.replace(m, receive_count=2)
                    for m in high
                    if message_id_of(m) == ok["messageId"]
                ]
                assert await runtime.invoke(sqs_event(prefix, "high", again)) == {
                    "batchItemFailures": []
                }
                assert platform.delivered_count(ok["messageId"]) == 1
                assert platform.requests == Counter({200: 1, 403: 1})

                # A new execution environment, against a provider that answers 5xx: the
                # record is reported failed and hidden for the backoff, not the queue's 30 s.
                await runtime.end()
                monkeypatch.setenv("ONLYFANS_API_URL", failing.url)
                invoked = time.monotonic()
                assert await runtime.invoke(sqs_event(prefix, "normal", [normal])) == {
                    "batchItemFailures": [{"itemIdentifier": normal.message_id}]
                }
                assert sum(failing.requests.values()) == 1
                assert set(failing.requests) <= {500, 502, 503}
                assert failing.deliveries() == []
                # The failed try is recorded; the message stays on its way.
                assert (await stack.event_types(flaky["messageId"]))[-1] == "MessageAttemptFailed"
                assert await queue.receive("normal") == [], "hidden for the backoff"
                redelivered: list[ReceivedMessage] = []

                async def back() -> bool:
                    redelivered.extend(await queue.receive("normal"))
                    return bool(redelivered)

                await until(back, interval=0.25)
                hidden = time.monotonic() - invoked
                assert 0.5 < hidden < 10, f"hidden for {hidden:.1f} s"  # the first retry: 1 s
                [record] = redelivered
                assert (message_id_of(record), record.receive_count) == (flaky["messageId"], 2)

                # The provider is back: the redelivered record is sent, once.
                await runtime.end()
                monkeypatch.setenv("ONLYFANS_API_URL", platform.url)
                assert await runtime.invoke(sqs_event(prefix, "normal", redelivered)) == {
                    "batchItemFailures": []
                }
                await queue.delete("normal", [record.receipt])
                assert platform.delivered_count(flaky["messageId"]) == 1
                [sent] = [d for d in platform.deliveries() if d.recipient == str(flaky_fan)]
                assert (sent.text, sent.price_cents) == ("New set", 900)
                assert (await stack.event_types(flaky["messageId"]))[-1] == "MessageSent"
                assert await queues_empty(stack)
    finally:
        await runtime.end()
        runtime.shutdown()


@pytest.mark.timeout(60)
async def test_a_scheduled_invocation_records_a_dead_letter_without_an_outcome_failed(
    sqs_endpoint_url: str, monkeypatch: pytest.MonkeyPatch, fresh_database_url: str
) -> None:
    """Lambda has no poller to sweep the dead-letter queues: an EventBridge schedule invokes
    the function, which records failed a dead letter whose last sender died before recording
    an outcome, so a person can retry it."""
    prefix = lambda_environment(monkeypatch, fresh_database_url, sqs_endpoint_url)
    monkeypatch.setenv("ONLYFANS_API_URL", "http://127.0.0.1:9")  # never called: nothing is sent
    runtime = LambdaRuntime()
    try:
        async with (
            asyncio.timeout(50),
            open_stack(
                fresh_database_url,
                queue_backend="sqs",
                sqs_endpoint_url=sqs_endpoint_url,
                sqs_queue_prefix=prefix,
            ) as stack,
        ):
            fan = await stack.new_fan("A")
            lost = await stack.send(recipientId=fan, content="Hello")
            await relay_all(stack)
            [received] = await stack.container.queue.receive("normal")
            # Its last receive's sender died: the queue dead-lettered it, no outcome recorded.
            session = aiobotocore.session.get_session()
            async with session.create_client(
                "sqs", endpoint_url=sqs_endpoint_url, region_name=REGION
            ) as sqs:
                dlq = await sqs.get_queue_url(QueueName=f"{prefix}-normal-dlq")
                await sqs.send_message(QueueUrl=dlq["QueueUrl"], MessageBody=received.body)
            await stack.container.queue.delete("normal", [received.receipt])
            assert (await stack.event_types(lost["messageId"]))[-1] == "MessageDispatched"

            schedule = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
            assert await runtime.invoke(schedule) == {"deadLettersRecordedFailed": 1}
            assert (await stack.event_types(lost["messageId"]))[-1] == "MessageFailed"
            assert (await stack.message_view(lost["messageId"]))["status"] == "failed"
            # Swept again (its dead letter is held out of the way meanwhile): nothing twice.
            assert await runtime.invoke(schedule) == {"deadLettersRecordedFailed": 0}
    finally:
        await runtime.end()
        runtime.shutdown()


# --- 5. a throttled message on its last receive -----------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("throttle", ["platform 429", "limiter wait"])
async def test_a_message_throttled_on_its_last_receive_is_failed_not_dead_lettered_silently(
    throttle: str,
    fresh_database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if throttle == "platform 429":
        # One send per 2 s for the account, and no limiter of ours (RATE_LIMITER_ENABLED=false):
        # the platform's 429 + Retry-After paces the sender.
        platform_limit: dict[str, Any] = {"rate_per_second": 0.5, "burst": 1}
        limiter: dict[str, object] = {"rate_limiter_enabled": False}
    else:
        # Our limiter allows one send per 2 s; a record takes its token or goes back at once
        # (the same as after MAX_TOKEN_WAIT, sooner).
        platform_limit = {}
        limiter = {"redis_url": redis_url, "rate_limit_per_second": 0.5, "rate_limit_burst": 1}
        monkeypatch.setattr(delivery_service, "MAX_TOKEN_WAIT", 0.0)
    async with (
        asyncio.timeout(45),
        simulator(**platform_limit) as platform,
        open_stack(
            fresh_database_url, onlyfans_api_url=platform.url, max_receive_count=2, **limiter
        ) as stack,
    ):
        fans = await fans_with_conversations(stack, 4)
        message_ids = await bulk_messages(stack, fans, 4)
        await relay_all(stack)

        async def quiet() -> bool:
            stats = await stack.container.queue.stats("normal")
            return stats.visible + stats.in_flight == 0

        async with pollers(stack) as sender:
            await until(quiet, interval=0.1)
            # What the poller's periodic dead-letter sweep does (every 10 s), now.
            await sender.settle_dead_letters(stack.container.queue)

        dead = (await stack.container.queue.stats("normal")).dead_letters
        last = {m: (await stack.event_types(m))[-1] for m in message_ids}
        delivered = {m for m in message_ids if platform.delivered_count(m) == 1}
        assert {m for m, event in last.items() if event == "MessageSent"} == delivered
        on_its_way = ("MessageDispatched", "MessageAttemptFailed")
        stuck = [m for m, event in last.items() if event in on_its_way]
        assert not stuck, f"{len(stuck)} dead-lettered ({dead} in the DLQ), still 'dispatched'"
