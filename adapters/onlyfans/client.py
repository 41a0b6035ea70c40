"""The OnlyFans gateway over HTTP, in the shape of the common third-party API providers.

    POST {base}/v1/accounts/{account}/chats/{recipient}/messages
    Authorization: Bearer <api key>
    Idempotency-Key: <our message id>
    {"text": "...", "price": <cents>, "mediaUrls": ["https://..."]}
    -> 2xx {"id": "<platform message id>", ...}

Every outcome is classified, never raised, so the sender decides retries in one place:
2xx sent; 429 rate_limited (Retry-After); 5xx, 408/409/425 and network failures retryable;
other 4xx permanent. A retry is always safe because it carries the same Idempotency-Key.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from urllib.parse import quote

import httpx
import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from adapters import tracing
from application.sending import PlatformMessage, PlatformSendResult

DEFAULT_RETRY_AFTER = 1.0  # seconds, when a 429 names no (readable) Retry-After
# 4xx answers that say "not now" rather than "never": a request timeout, a request with the same
# key still in progress, "too early".
RETRYABLE_4XX = frozenset({408, 409, 425})
MAX_REASON = 300  # characters of the provider's message kept in a reason


class _SendBody(msgspec.Struct):
    text: str
    price: int
    mediaUrls: list[str]  # noqa: N815 - the provider's field name


class OnlyFansClient:
    """Shared HTTP clients for every send: connections (and TLS sessions) are reused across
    messages and accounts. Close it with ``aclose()`` (or ``async with``).

    The connections are spread over ``shards`` small ``httpx.AsyncClient``s, taken in turn:
    httpcore scans its whole pool on every request and release, so CPU per call grows with
    the pool (figures: bench/MEASUREMENTS.md, "HTTP client shards")."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_connections: int = 100,
        shards: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
        platform: str = "onlyfans",
        classifier: Callable[[httpx.Response], PlatformSendResult] | None = None,
    ) -> None:
        # Fansly's providers speak this same shape: one client class, another base URL, key
        # and label. ``classifier``: a platform whose answers mean other things brings its own.
        self.platform = platform
        self._classify = classifier or classify
        per_shard = max(1, max_connections // shards)
        self._clients = [
            httpx.AsyncClient(
                base_url=base_url.rstrip("/"),
                headers={"Authorization": f"Bearer {api_key}", "User-Agent": "fancrm-sender/1"},
                timeout=httpx.Timeout(timeout),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
                transport=transport,
            )
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(self._clients)
        self._encoder = msgspec.json.Encoder()

    async def __aenter__(self) -> OnlyFansClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        # Ids go into the path: quote everything so an id can never change the route.
        path = (
            f"/v1/accounts/{quote(message.account, safe='')}"
            f"/chats/{quote(message.recipient, safe='')}/messages"
        )
        body = _SendBody(
            text=message.text, price=message.price_cents, mediaUrls=list(message.media_urls)
        )
        # A child of the sender's span; the provider gets its `traceparent` too.
        with tracing.tracer().start_as_current_span(
            "POST /v1/accounts/{account}/chats/{recipient}/messages",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "onlyfans.account": message.account,
                "platform": self.platform,
            },
        ) as span:
            result = await self._post(path, self._encoder.encode(body), message.idempotency_key)
            span.set_attribute("onlyfans.outcome", result.outcome)
            if result.outcome != "sent":
                tracing.failed(span, result.reason or result.outcome)
            return result

    async def _post(self, path: str, content: bytes, idempotency_key: str) -> PlatformSendResult:
        try:
            response = await next(self._turn).post(
                path,
                content=content,
                headers=tracing.with_trace_context(
                    {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
                ),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # The request never left (refused, unreachable, no free connection): unambiguous,
            # and still worth another try.
            return PlatformSendResult(outcome="retryable", reason=f"not sent: {_describe(error)}")
        except httpx.TimeoutException as error:
            # Sent, no answer: the provider may have delivered it. Only a retry with the same
            # Idempotency-Key can tell, without delivering twice.
            return PlatformSendResult(
                outcome="retryable",
                reason=f"timeout, may have been delivered: {_describe(error)}",
                ambiguous=True,
            )
        except httpx.HTTPError as error:
            return PlatformSendResult(
                outcome="retryable", reason=f"network error: {_describe(error)}"
            )
        trace.get_current_span().set_attribute("http.response.status_code", response.status_code)
        return self._classify(response)


def classify(response: httpx.Response) -> PlatformSendResult:
    status = response.status_code
    if 200 <= status < 300:
        return PlatformSendResult(
            outcome="sent", platform_message_id=_platform_id(response.content)
        )
    if status == 429:
        return PlatformSendResult(
            outcome="rate_limited",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            reason=_reason(response),
        )
    if status >= 500 or status in RETRYABLE_4XX:
        header = response.headers.get("Retry-After")
        return PlatformSendResult(
            outcome="retryable",
            retry_after=parse_retry_after(header) if header else None,
            reason=_reason(response),
        )
    return PlatformSendResult(outcome="permanent", reason=_reason(response))


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds (a fraction is tolerated) or an
    HTTP date; ``DEFAULT_RETRY_AFTER`` when absent or unreadable, never negative."""
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means just that
            return DEFAULT_RETRY_AFTER
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER
    return max(0.0, seconds)


def _platform_id(content: bytes) -> str | None:
    """The provider's id of the message; a 2xx without a readable one is still a delivery."""
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None
    if not isinstance(body, dict):
        return None
    found = body.get("id")
    if found is None and isinstance(body.get("data"), dict):  # some wrap it in "data"
        found = body["data"].get("id")
    if isinstance(found, str | int) and not isinstance(found, bool):
        return str(found)
    return None


def _reason(response: httpx.Response) -> str:
    """``"404 Not Found: fan not found"``: the status and the provider's own message, which the
    providers put under ``error.message``, ``error`` or ``message``."""
    reason = f"{response.status_code} {response.reason_phrase}".strip()
    message = _provider_message(response.content)
    return f"{reason}: {message[:MAX_REASON]}" if message else reason


def _provider_message(content: bytes) -> str | None:
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        text = content.decode("utf-8", "replace").strip()
        return text or None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    found = error or body.get("message") or body.get("detail")
    return str(found) if found else None


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
