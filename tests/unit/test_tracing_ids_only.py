"""With nothing exporting spans, a request's span only carries ids: the ones the SDK would give
(the caller's trace continued, its sampled flag kept; a new sampled trace otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters import tracing

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def ids_only() -> Iterator[None]:
    tracing.install([])
    try:
        yield
    finally:
        tracing.uninstall()


async def seen_by_the_app(headers: list[tuple[bytes, bytes]]) -> trace.SpanContext:
    """The span context current inside the app the middleware wraps."""
    seen: list[trace.SpanContext] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    await tracing.tracing_middleware(app)(scope, None, None)
    return seen[0]


async def test_a_request_without_traceparent_starts_a_sampled_trace(ids_only: None) -> None:
    first = await seen_by_the_app([])
    second = await seen_by_the_app([])

    assert first.is_valid
    assert second.is_valid
    assert first.trace_id != second.trace_id
    assert first.trace_flags.sampled
    assert not first.is_remote
    assert not trace.get_current_span().get_span_context().is_valid  # restored after


@pytest.mark.parametrize("flags", ["01", "00"])
async def test_a_request_with_traceparent_continues_the_callers_trace(
    ids_only: None, flags: str
) -> None:
    parent = f"00-{PARENT_TRACE}-{PARENT_SPAN}-{flags}".encode()

    seen = await seen_by_the_app([(b"traceparent", parent), (b"tracestate", b"k=v")])

    assert format(seen.trace_id, "032x") == PARENT_TRACE
    assert format(seen.span_id, "016x") != PARENT_SPAN
    assert seen.trace_flags.sampled is (flags == "01")
    assert seen.trace_state.get("k") == "v"
    assert tracing.current_ids() is None  # restored after


async def test_an_exporting_provider_still_records_the_server_span() -> None:
    exporter = InMemorySpanExporter()
    tracing.install([SimpleSpanProcessor(exporter)])
    try:
        seen = await seen_by_the_app([])
    finally:
        tracing.uninstall()

    [span] = exporter.get_finished_spans()
    assert span.context is not None
    assert span.context.span_id == seen.span_id
    assert span.kind == trace.SpanKind.SERVER
