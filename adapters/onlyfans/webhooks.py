"""The simulator's webhooks: what a provider posts to us after a delivery.

    POST {target}/api/onlyfans/webhooks
    X-OnlyFans-Account: <account>
    X-OnlyFans-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>
    {"id": "evt_...", "type": "message.delivered" | "message.read" | "message.clicked" |
     "message.purchased" | "message.received",
     "account": "...", "createdAt": "...Z", "data": {...}}

Like the real providers', delivery is at least once: a non-2xx answer or a network error is
retried with the same event id (and a fresh signature), and an event may arrive twice, so the
receiver must deduplicate on ``id``. Events of one message go out in order (read, purchased,
reply), each after its own delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx
import msgspec
import structlog

from adapters.onlyfans.signing import ACCOUNT_HEADER, SIGNATURE_HEADER, sign

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/api/onlyfans/webhooks"
RETRY_BACKOFF = 0.5  # seconds before the 2nd attempt, doubling after


class WebhookStep(NamedTuple):
    type: str
    delay: float  # seconds after the previous step (or the delivery)
    duplicate: bool  # post it twice


class WebhookPlan(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    recipient: str
    message_id: str | None  # our idempotency key
    platform_message_id: str
    price_cents: int
    steps: list[WebhookStep]
    reply: str  # the fan's text, for message.received


class WebhookAttempt(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    type: str
    account: str
    status: int | None  # None: no answer (network error)
    error: str | None
    at: datetime


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookEmitter:
    """Posts planned events from the server's loop; ``running()`` owns the HTTP client and
    cancels what is still pending when the simulator stops."""

    def __init__(self, target: str | None, secrets: dict[str, str], max_attempts: int = 3) -> None:
        self.max_attempts = max_attempts
        self._url = f"{target.rstrip('/')}{WEBHOOK_PATH}" if target else None
        self._secrets = secrets
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._attempts: list[WebhookAttempt] = []  # appended on the loop, read from tests

    def attempts(self) -> list[WebhookAttempt]:
        return list(self._attempts)  # a list copy is atomic enough under the GIL

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as http:
            self._http = http
            try:
                yield
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                self._http = None

    def schedule(self, plan: WebhookPlan) -> None:
        if self._url is None or self._http is None or not plan.steps:
            return
        if plan.account not in self._secrets:
            return  # the account never registered a webhook: a provider sends nothing
        task = asyncio.get_running_loop().create_task(self._emit(plan))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, plan: WebhookPlan) -> None:
        for step in plan.steps:
            await asyncio.sleep(step.delay)
            event = {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": step.type,
                "account": plan.account,
                "createdAt": _now_iso(),
                "data": _data(step.type, plan),
            }
            body = msgspec.json.encode(event)
            for _ in range(2 if step.duplicate else 1):
                await self._post(plan.account, event, body)

    async def _post(self, account: str, event: dict[str, Any], body: bytes) -> None:
        assert self._url is not None
        assert self._http is not None
        for attempt in range(self.max_attempts):
            status: int | None = None
            error: str | None = None
            headers = {
                "Content-Type": "application/json",
                ACCOUNT_HEADER: account,
                SIGNATURE_HEADER: sign(self._secrets[account], body, int(time.time())),
            }
            try:
                response = await self._http.post(self._url, content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._attempts.append(
                WebhookAttempt(
                    event_id=event["id"],
                    type=event["type"],
                    account=account,
                    status=status,
                    error=error,
                    at=datetime.now(UTC),
                )
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt + 1 < self.max_attempts:
                await asyncio.sleep(RETRY_BACKOFF * 2**attempt)
        log.warning("simulator.webhook_failed", event_id=event["id"], status=status, error=error)


def _data(kind: str, plan: WebhookPlan) -> dict[str, Any]:
    if kind in ("message.read", "message.delivered", "message.clicked"):
        at = {"message.read": "readAt", "message.delivered": "deliveredAt"}.get(kind, "clickedAt")
        return {
            "messageId": plan.message_id,
            "platformMessageId": plan.platform_message_id,
            "fanId": plan.recipient,
            at: _now_iso(),
        }
    if kind == "message.purchased":
        return {
            "messageId": plan.message_id,
            "platformMessageId": plan.platform_message_id,
            "fanId": plan.recipient,
            "amountCents": plan.price_cents,
        }
    # message.received: the fan wrote back; a new message of theirs, with its own platform id.
    return {
        "fanId": plan.recipient,
        "text": plan.reply,
        "platformMessageId": f"msg_{uuid.uuid4().hex}",
        "inReplyTo": plan.platform_message_id,
    }
