"""A simulated OnlyFans API provider: the client's contract, with the provider's bad days.

It serves ``POST /v1/accounts/{account}/chats/{recipient}/messages`` like the real providers
(see client.py) and, configured by ``SimulatorConfig``, misbehaves the way they do: latency,
per-account rate limits (429 + Retry-After), 5xx, timeouts that sometimes deliver before
hanging, unknown (404) and blocking (403) fans. Idempotency keys are honoured per account: a
repeated key answers the first 200 and never delivers twice, even when the copies arrive at
once. After a delivery it can post signed webhooks (read, purchased, fan reply) to our API,
drawn from fixed probabilities or, with ``population``, from each fan's hidden traits
(population.py, fan_model.py).

Behaviour draws come from one seeded ``random.Random``; the ids it hands out are random UUIDs,
so a restarted simulator never reuses an id the CRM has already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from adapters.onlyfans.gcra import Gcra
from adapters.onlyfans.population import Population, PopulationConfig
from adapters.onlyfans.server import BackgroundServer
from adapters.onlyfans.webhooks import (
    WEBHOOK_PATH,
    WebhookAttempt,
    WebhookEmitter,
    WebhookPlan,
    WebhookStep,
)

log = structlog.get_logger(__name__)

SEND_PATH = "/v1/accounts/{account:str}/chats/{recipient:str}/messages"


class MessageRule(msgspec.Struct, frozen=True, kw_only=True):
    """Fans' behaviour towards messages whose text contains ``contains``; what it leaves
    unset is the config's default. So a test can make one variant of a message truly sell
    (or draw replies) better than another."""

    contains: str
    read_probability: float | None = None
    purchase_probability: float | None = None
    reply_probability: float | None = None


class Behaviour(msgspec.Struct, frozen=True, kw_only=True):
    read_probability: float
    purchase_probability: float
    reply_probability: float


class SimulatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    api_key: str | None = None  # None: any bearer token is accepted (but one is required)
    seed: int | None = 0
    latency: float = 0.0  # seconds added to every send...
    latency_jitter: float = 0.0  # ...plus uniform(0, jitter)
    rate_per_second: float | None = None  # per account; None: no limit
    burst: int = 10
    retry_after_http_date: bool = False  # Retry-After as an HTTP date rather than seconds
    error_rate: float = 0.0  # 500/502/503
    timeout_rate: float = 0.0  # hang for timeout_seconds, then 504
    timeout_seconds: float = 30.0  # longer than any sane client timeout
    timeout_delivery_rate: float = 0.5  # of the timeouts, those that deliver before hanging
    permanent_error_rate: float = 0.0  # 404 fan not found
    unknown_recipients: frozenset[str] = frozenset()  # always 404
    blocked_recipients: frozenset[str] = frozenset()  # always 403
    # Webhooks, posted to {webhook_url}/api/onlyfans/webhooks for accounts with a secret.
    webhook_url: str | None = None
    webhook_secrets: dict[str, str] = msgspec.field(default_factory=dict)
    delivery_probability: float = 0.0  # a delivery receipt ("message.delivered")
    read_probability: float = 0.0
    click_probability: float = 0.0  # of read messages
    purchase_probability: float = 0.0  # of priced messages only
    reply_probability: float = 0.0
    webhook_delay: float = 0.5  # seconds before each event (after the previous one)...
    webhook_delay_jitter: float = 0.5  # ...plus uniform(0, jitter)
    webhook_attempts: int = 3  # a non-2xx answer or network error is retried (same event id)
    webhook_duplicate_rate: float = 0.0  # events sent twice: webhooks are at-least-once
    # Per-message behaviour, first match wins (see MessageRule). With rules, whether a fan
    # reads, buys or replies is drawn from the seed and the message's idempotency key alone,
    # so that a test's outcome does not depend on the order concurrent sends arrive in.
    message_rules: tuple[MessageRule, ...] = ()
    # Fans with hidden traits (adapters/onlyfans/population.py): set, they read, buy, reply
    # and churn by their own habits instead of the probabilities above and message_rules.
    population: PopulationConfig | None = None
    log_requests: bool = False

    def behaviour_for(self, text: str) -> Behaviour:
        """How fans treat a message with this text: the first rule it matches, else the
        defaults (and the defaults wherever that rule is silent)."""
        rule = next((r for r in self.message_rules if r.contains in text), MessageRule(contains=""))
        return Behaviour(
            read_probability=_or(rule.read_probability, self.read_probability),
            purchase_probability=_or(rule.purchase_probability, self.purchase_probability),
            reply_probability=_or(rule.reply_probability, self.reply_probability),
        )

    def __post_init__(self) -> None:
        rates = {
            "error_rate": self.error_rate,
            "timeout_rate": self.timeout_rate,
            "timeout_delivery_rate": self.timeout_delivery_rate,
            "permanent_error_rate": self.permanent_error_rate,
            "delivery_probability": self.delivery_probability,
            "read_probability": self.read_probability,
            "click_probability": self.click_probability,
            "purchase_probability": self.purchase_probability,
            "reply_probability": self.reply_probability,
            "webhook_duplicate_rate": self.webhook_duplicate_rate,
        }
        for index, rule in enumerate(self.message_rules):
            if not rule.contains:
                raise ValueError(f"message_rules[{index}].contains must not be empty")
            for field in ("read_probability", "purchase_probability", "reply_probability"):
                value = getattr(rule, field)
                if value is not None:
                    rates[f"message_rules[{index}].{field}"] = value
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value}")
        if self.error_rate + self.timeout_rate + self.permanent_error_rate > 1.0:
            raise ValueError("error_rate + timeout_rate + permanent_error_rate exceed 1")
        if self.rate_per_second is not None and self.rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0 (or None for no limit)")
        if self.burst < 1 or self.webhook_attempts < 1:
            raise ValueError("burst and webhook_attempts must be >= 1")


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    recipient: str
    text: str
    price_cents: int
    media_urls: tuple[str, ...]
    idempotency_key: str | None
    platform_message_id: str
    delivered_at: datetime


class _SendBody(msgspec.Struct):
    text: str = ""
    price: int = 0
    mediaUrls: list[str] = msgspec.field(default_factory=list)  # noqa: N815 - their name


class _Answer(msgspec.Struct):
    status: int
    body: bytes
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class _Stored(msgspec.Struct):
    fingerprint: bytes  # what was asked: a key reused for another message is refused
    answer: _Answer


def _error(status: int, code: str, message: str, **headers: str) -> _Answer:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    return _Answer(status=status, body=body, headers=headers)


def _fingerprint(account: str, recipient: str, body: _SendBody) -> bytes:
    return hashlib.sha256(msgspec.json.encode([account, recipient, body])).digest()


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SimulatorState:
    """Everything the simulator knows. Handlers run on the server's loop; ``deliveries()`` and
    the counters are read from other threads (tests), hence the lock around them."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.population = Population(config.population, clock) if config.population else None
        # Reproducible misbehaviour, not secrets: a seeded PRNG is the point.
        self.rng = random.Random(config.seed)  # noqa: S311
        self.limiter = (
            Gcra(config.rate_per_second, config.burst) if config.rate_per_second else None
        )
        self.webhooks = WebhookEmitter(
            config.webhook_url, config.webhook_secrets, config.webhook_attempts
        )
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._requests: Counter[int] = Counter()
        # (account, idempotency key) -> first successful answer. Per account, as a provider
        # must: keys are chosen by each account, and one account's key never answers (or
        # refuses) another's message.
        self._stored: dict[tuple[str, str], _Stored] = {}
        self._key_locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}

    # -- inspection (any thread) --------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def delivered_count(self, idempotency_key: str) -> int:
        with self._lock:
            return sum(1 for d in self._deliveries if d.idempotency_key == idempotency_key)

    @property
    def requests(self) -> Counter[int]:
        """Answers per status code; an injected timeout counts as the 504 it ends with."""
        with self._lock:
            return Counter(self._requests)

    # -- the send endpoint (server loop) ------------------------------------------------------

    async def send(
        self, account: str, recipient: str, headers: Mapping[str, str], raw: bytes
    ) -> _Answer:
        answer, hang = await self._send(account, recipient, headers, raw)
        with self._lock:
            self._requests[answer.status] += 1
        if self.config.log_requests:
            log.info(
                "simulator.send",
                account=account,
                recipient=recipient,
                status=answer.status,
                key=headers.get("idempotency-key"),
                hang=hang or None,
            )
        if hang:
            # Outside the key's lock: a retry with the same key meanwhile is answered at once
            # (from the stored 200 when this one delivered), as a real provider would.
            await asyncio.sleep(hang)
        return answer

    async def _send(
        self, account: str, recipient: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[_Answer, float]:
        authorization = headers.get("authorization", "")
        expected = f"Bearer {self.config.api_key}" if self.config.api_key else None
        if not authorization.startswith("Bearer ") or (expected and authorization != expected):
            return _error(401, "unauthorized", "missing or invalid API key"), 0.0
        if self.limiter is not None and (wait := self.limiter.try_acquire(account)) > 0:
            return self._rate_limited(wait), 0.0
        try:
            body = msgspec.json.decode(raw, type=_SendBody)
        except msgspec.ValidationError as error:
            return _error(400, "invalid_request", str(error)), 0.0
        except msgspec.DecodeError:
            return _error(400, "invalid_request", "the body is not JSON"), 0.0
        if body.price < 0 or not (body.text or body.mediaUrls):
            return _error(400, "invalid_request", "a message needs text or media, price >= 0"), 0.0
        key = headers.get("idempotency-key") or None
        if key is None:
            return await self._decide(account, recipient, body, None)
        # Copies of one key wait here for the first to finish: then they find its answer.
        async with self._key_lock((account, key)):
            stored = self._stored.get((account, key))
            if stored is None:
                return await self._decide(account, recipient, body, key)
        if stored.fingerprint != _fingerprint(account, recipient, body):
            return _error(
                422, "idempotency_key_reused", "this Idempotency-Key was used for another message"
            ), 0.0
        return _Answer(200, stored.answer.body, {"Idempotent-Replayed": "true"}), 0.0

    async def _decide(
        self, account: str, recipient: str, body: _SendBody, key: str | None
    ) -> tuple[_Answer, float]:
        config, rng = self.config, self.rng
        delay = config.latency + rng.uniform(0, config.latency_jitter)
        if delay:
            await asyncio.sleep(delay)
        if recipient in config.blocked_recipients:
            return _error(403, "fan_blocked", f"fan {recipient} has blocked this account"), 0.0
        draw = rng.random()
        if recipient in config.unknown_recipients or draw < config.permanent_error_rate:
            return _error(404, "fan_not_found", f"fan {recipient} not found"), 0.0
        draw -= config.permanent_error_rate
        if draw < config.error_rate:
            status = rng.choice((500, 502, 503))
            return _error(status, "server_error", "the provider failed, try again"), 0.0
        draw -= config.error_rate
        if draw < config.timeout_rate:
            # A real timeout is ambiguous: sometimes the message went out before the hang.
            if rng.random() < config.timeout_delivery_rate:
                self._deliver(account, recipient, body, key)
            timeout = _error(504, "gateway_timeout", "upstream timed out")
            return timeout, config.timeout_seconds
        return self._deliver(account, recipient, body, key), 0.0

    def _deliver(self, account: str, recipient: str, body: _SendBody, key: str | None) -> _Answer:
        delivery = Delivery(
            account=account,
            recipient=recipient,
            text=body.text,
            price_cents=body.price,
            media_urls=tuple(body.mediaUrls),
            idempotency_key=key,
            platform_message_id=f"msg_{uuid.uuid4().hex}",
            delivered_at=datetime.now(UTC),
        )
        with self._lock:
            self._deliveries.append(delivery)
        answer = _Answer(
            200,
            msgspec.json.encode(
                {
                    "id": delivery.platform_message_id,
                    "accountId": account,
                    "fanId": recipient,
                    "text": body.text,
                    "price": body.price,
                    "mediaUrls": body.mediaUrls,
                    "createdAt": iso(delivery.delivered_at),
                }
            ),
        )
        if key is not None:
            # Only deliveries are remembered: after a 429, 5xx or 404 the same key may try again.
            # Stored even when nobody hears the answer (a timeout), so the retry finds it.
            self._stored[account, key] = _Stored(_fingerprint(account, recipient, body), answer)
        self.webhooks.schedule(self._webhook_plan(delivery))
        return answer

    def _webhook_plan(self, delivery: Delivery) -> WebhookPlan:
        """Draw now, on the handler's path, so a seed gives the same events for the same
        sends whatever the webhooks' own timing."""
        config, rng = self.config, self.rng

        def delay() -> float:
            return config.webhook_delay + rng.uniform(0, config.webhook_delay_jitter)

        def duplicate() -> bool:
            return rng.random() < config.webhook_duplicate_rate

        steps: list[WebhookStep] = []
        behaviour = config.behaviour_for(delivery.text)
        fan = rng
        if config.message_rules:
            key = delivery.idempotency_key or delivery.platform_message_id
            fan = random.Random(f"{config.seed}:{key}")  # noqa: S311 - reproducible, not secret
        # Drawn only when configured, so that older seeds keep giving the same events.
        if config.delivery_probability and rng.random() < config.delivery_probability:
            steps.append(WebhookStep("message.delivered", delay(), duplicate()))
        known = None
        if self.population is not None:
            known = self.population.respond(
                delivery.account, delivery.recipient, delivery.price_cents
            )
        if known.read if known is not None else fan.random() < behaviour.read_probability:
            steps.append(WebhookStep("message.read", delay(), duplicate()))
            if config.click_probability and rng.random() < config.click_probability:
                steps.append(WebhookStep("message.clicked", delay(), duplicate()))
        if delivery.price_cents > 0 and (
            known.bought if known is not None else fan.random() < behaviour.purchase_probability
        ):
            steps.append(WebhookStep("message.purchased", delay(), duplicate()))
        if known.replied if known is not None else fan.random() < behaviour.reply_probability:
            steps.append(WebhookStep("message.received", delay(), duplicate()))
        return WebhookPlan(
            account=delivery.account,
            recipient=delivery.recipient,
            message_id=delivery.idempotency_key,
            platform_message_id=delivery.platform_message_id,
            price_cents=delivery.price_cents,
            steps=steps,
            reply=rng.choice(_REPLIES),
        )

    def _rate_limited(self, wait: float) -> _Answer:
        seconds = max(1, math.ceil(wait))  # delta-seconds is a whole number
        if self.config.retry_after_http_date:
            # Whole seconds too: round the moment up, so that it is never earlier than meant.
            at = math.ceil(time.time() + seconds)
            value = format_datetime(datetime.fromtimestamp(at, UTC), usegmt=True)
        else:
            value = str(seconds)
        return _error(
            429, "rate_limited", "too many requests for this account", **{"Retry-After": value}
        )

    @contextlib.asynccontextmanager
    async def _key_lock(self, key: tuple[str, str]) -> AsyncIterator[None]:
        """One lock per idempotency key while anyone holds or awaits it, then forgotten."""
        lock, users = self._key_locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._key_locks[key]


_REPLIES = ("thanks babe", "omg yes", "how much for more?", "love it", "can you send another?")


def create_simulator_app(
    config: SimulatorConfig | None = None, *, state: SimulatorState | None = None
) -> Litestar:
    """The simulator as an ASGI app (``state`` lets a caller inspect what it did)."""
    simulator = state or SimulatorState(config or SimulatorConfig())

    @post(SEND_PATH, status_code=200)
    async def send_message(
        request: Request[Any, Any, Any], account: FromPath[str], recipient: FromPath[str]
    ) -> Response[bytes]:
        answer = await simulator.send(account, recipient, request.headers, await request.body())
        return Response(
            answer.body,
            status_code=answer.status,
            headers=answer.headers,
            media_type="application/json",
        )

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @contextlib.asynccontextmanager
    async def webhooks_running(app: Litestar) -> AsyncIterator[None]:
        async with simulator.webhooks.running():
            yield

    return Litestar(
        route_handlers=[send_message, health],
        lifespan=[webhooks_running],
        state=State({"simulator": simulator}),
        logging_config=None,
        openapi_config=None,
    )


class Simulator:
    """The simulator on 127.0.0.1 (a free port by default), served from a thread of its own:
    ``start()``/``stop()``, or ``with``/``async with``. Inspect it with ``deliveries()``,
    ``delivered_count(key)``, ``requests`` and ``webhook_attempts()``."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,  # the population's clock
    ) -> None:
        self.config = config or SimulatorConfig()
        self.state = SimulatorState(self.config, clock)
        self._server = BackgroundServer(
            create_simulator_app(state=self.state), host=host, port=port
        )

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Simulator:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Simulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def deliveries(self) -> list[Delivery]:
        return self.state.deliveries()

    def delivered_count(self, idempotency_key: str) -> int:
        return self.state.delivered_count(idempotency_key)

    @property
    def requests(self) -> Counter[int]:
        return self.state.requests

    def webhook_attempts(self) -> list[WebhookAttempt]:
        return self.state.webhooks.attempts()


def serve_simulator(config: SimulatorConfig, host: str, port: int) -> None:
    """Run in the foreground until Ctrl-C (`crm simulate onlyfans`)."""
    import uvicorn

    base = f"http://{host}:{port}"
    limit = (
        f"{config.rate_per_second:g}/s per account, burst {config.burst}"
        if config.rate_per_second
        else "none"
    )
    failures = (
        f"5xx {config.error_rate:.0%}, timeouts {config.timeout_rate:.0%} "
        f"({config.timeout_delivery_rate:.0%} of them deliver), "
        f"404 {config.permanent_error_rate:.0%}"
    )
    hooks = f"{config.webhook_url.rstrip('/')}{WEBHOOK_PATH}" if config.webhook_url else "off"
    print(
        f"""
OnlyFans API simulator on {base} (Ctrl-C stops it)

  send        POST {base}/v1/accounts/{{account}}/chats/{{fan}}/messages
  rate limit  {limit}
  failures    {failures}
  webhooks    {hooks}
""",
        flush=True,
    )
    uvicorn.run(
        create_simulator_app(config),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
