"""One send through the API ends as one trace: the HTTP request, the relay, the queue (Postgres
and SQS on moto's server), the sender and the OnlyFans call, linked parent to child by the W3C
trace context the outbox row, the queue message and the provider's request carry; the log lines
of the sender carry the trace id; the events carry it in their metadata."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from structlog.testing import LogCapture

from adapters import tracing
from adapters.observability import add_trace_ids
from adapters.onlyfans.client import OnlyFansClient
from adapters.redis import DisabledRateLimiter
from domain.message import message_stream_id
from tests.support.sending import Stack, aws_env, open_stack
from worker.relay import Relay
from worker.sender import Sender, record_from_receive, settle


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install([SimpleSpanProcessor(exporter)])
    try:
        yield exporter
    finally:
        tracing.uninstall()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    previous = structlog.get_config()
    structlog.configure(processors=[add_trace_ids, capture], cache_logger_on_first_use=False)
    try:
        yield capture
    finally:
        structlog.configure(**previous)


class Provider:
    """The OnlyFans provider as an httpx transport: answers 200 (404 for the ``unknown``
    recipients) and keeps each request."""

    def __init__(self, unknown: frozenset[int] = frozenset()) -> None:
        self.requests: list[httpx.Request] = []
        self.unknown = unknown

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if any(f"/chats/{fan}/" in request.url.path for fan in self.unknown):
            return httpx.Response(404, json={"error": {"message": "fan not found"}})
        return httpx.Response(200, json={"id": f"of-{uuid.uuid4().hex[:8]}"})


async def deliver_everything(stack: Stack, provider: Provider) -> None:
    """Relay the outbox, then receive and send what is on the queue, once."""
    await Relay(stack.container.outbox, stack.container.queue, stack.container.events).run_once()
    gateway = OnlyFansClient(
        "https://onlyfans.test", "key", transport=httpx.MockTransport(provider)
    )
    sender = Sender(
        stack.container.events,
        stack.container.personal,
        stack.container.pool,
        gateway,
        DisabledRateLimiter(),
        max_receive_count=5,
    )
    try:
        for name in ("high", "normal"):
            records = [
                record_from_receive(name, m) for m in await stack.container.queue.receive(name)
            ]
            if records:
                await settle(stack.container.queue, records, await sender.handle(records))
    finally:
        await gateway.aclose()


def by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in finished if span.kind == kind]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["postgres", "sqs"])
async def test_one_send_through_the_api_is_one_trace_from_the_request_to_the_onlyfans_call(
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    fresh_database_url: str,
    spans: InMemorySpanExporter,
    logs: LogCapture,
) -> None:
    queue_settings: dict[str, object] = {}
    if backend == "sqs":
        for name, value in aws_env().items():
            monkeypatch.setenv(name, value)
        queue_settings = {
            "queue_backend": "sqs",
            "sqs_endpoint_url": request.getfixturevalue("sqs_endpoint_url"),
            "sqs_queue_prefix": f"trace{uuid.uuid4().hex[:12]}",
        }
    provider = Provider()
    async with asyncio.timeout(45), open_stack(fresh_database_url, **queue_settings) as stack:
        fan_id = await stack.new_fan("Ann")
        spans.clear()
        sent = await stack.send(recipientId=fan_id, content="Hi Ann", priority=9)
        await deliver_everything(stack, provider)
        recorded = await stack.container.events.load(
            message_stream_id(stack.tenant, sent["messageId"])
        )

    finished = spans.get_finished_spans()
    [http_span] = [s for s in by_kind(finished, SpanKind.SERVER) if "send" in s.name]
    [relay_span] = by_kind(finished, SpanKind.PRODUCER)
    [sender_span] = by_kind(finished, SpanKind.CONSUMER)
    [call_span] = by_kind(finished, SpanKind.CLIENT)
    trace_id = http_span.context.trace_id
    assert {s.context.trace_id for s in (relay_span, sender_span, call_span)} == {trace_id}
    # Each step is the child of the one before it.
    assert relay_span.parent is not None
    assert relay_span.parent.span_id == http_span.context.span_id
    assert sender_span.parent is not None
    assert sender_span.parent.span_id == relay_span.context.span_id
    assert call_span.parent is not None
    assert call_span.parent.span_id == sender_span.context.span_id
    assert http_span.name == "POST /api/onlyfans/messages/send"
    assert call_span.attributes is not None
    assert call_span.attributes["onlyfans.outcome"] == "sent"

    trace_hex = format(trace_id, "032x")
    [call] = provider.requests
    # version-traceid-parentid-flags: the provider sees the call's own span as parent.
    version, traced, parent, _ = call.headers["traceparent"].split("-")
    assert (version, traced, parent) == ("00", trace_hex, format(call_span.context.span_id, "016x"))
    [sent_line] = [line for line in logs.entries if line["event"] == "message sent"]
    assert sent_line["trace_id"] == trace_hex
    assert sent_line["span_id"] == format(sender_span.context.span_id, "016x")
    # The command's event records the trace it was decided in.
    assert recorded[0].metadata.trace_id == trace_hex
    assert [r.event_type for r in recorded][-1] == "MessageSent"


async def test_a_request_continues_the_trace_its_caller_sent(
    http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    caller_trace = uuid.uuid4().hex
    caller_span = uuid.uuid4().hex[:16]
    response = await http.get(
        "/health", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"}
    )
    assert response.status_code == 200
    [span] = [s for s in spans.get_finished_spans() if s.name == "GET /health"]
    assert format(span.context.trace_id, "032x") == caller_trace
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == caller_span


def test_a_log_line_carries_the_ids_of_the_current_span_and_keeps_its_own(
    spans: InMemorySpanExporter,
) -> None:
    assert add_trace_ids(None, "info", {"event": "outside"}) == {"event": "outside"}
    with tracing.tracer().start_as_current_span("work") as span:
        line = add_trace_ids(None, "info", {"event": "inside"})
        own = add_trace_ids(None, "info", {"event": "about a message", "trace_id": "t" * 32})
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert own["trace_id"] == "t" * 32


def test_the_trace_context_travels_in_attributes_and_is_read_back(
    spans: InMemorySpanExporter,
) -> None:
    assert tracing.with_trace_context({"correlation_id": "c"}) == {"correlation_id": "c"}
    with tracing.tracer().start_as_current_span("command") as span:
        carried = tracing.with_trace_context({"correlation_id": "c"})
    trace_hex = format(span.get_span_context().trace_id, "032x")
    assert carried["correlation_id"] == "c"
    assert tracing.trace_id_of(carried) == trace_hex
    with tracing.consuming("later", carried) as child:
        assert format(child.get_span_context().trace_id, "032x") == trace_hex
    assert tracing.trace_id_of({"traceparent": "garbage"}) is None
