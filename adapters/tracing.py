"""Traces: one trace per message, from the HTTP request to the OnlyFans call.

    HTTP request (SERVER span, continues an incoming `traceparent`)
      └ outbox row: its attributes carry the W3C `traceparent` of the command's span
          └ relay (PRODUCER span per message) ── queue message attribute `traceparent`
              └ sender (CONSUMER span per record) ── the OnlyFans call (CLIENT span), whose
                request carries `traceparent` too

The context crosses the outbox and the queue as W3C trace context in the message attributes
(SQS MessageAttributes; the Postgres queue's attributes column), so the Lambda sender, another
process or another machine continues the same trace. A span or two per message, no more: the
sender's hot path is benchmarked.

The provider is installed at start-up (``configure_from_env``; OTLP export when the OTEL_*
variables ask for it) or by a test (``install`` with an in-memory exporter). With none, the
OpenTelemetry API's no-op tracer still carries an incoming context through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from adapters import metrics

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()
_installed: list[TracerProvider] = []
# Whether the installed provider exports nothing and samples as the default (parent-based,
# always on): then a request's span only has to carry ids, see ``_ids_only_span``.
_ids_only: list[bool] = [False]


def install(processors: list[SpanProcessor], *, default_sampler: bool = True) -> TracerProvider:
    """Use a TracerProvider with these span processors from now on (the previous one is shut
    down). Ours, not the API's global one, which can be set only once per process."""
    uninstall()
    provider = TracerProvider(resource=metrics.resource())
    for processor in processors:
        provider.add_span_processor(processor)
    _installed[:] = [provider]
    _ids_only[0] = not processors and default_sampler
    tracer.cache_clear()
    return provider


def uninstall() -> None:
    for previous in _installed:
        previous.shutdown()
    _installed.clear()
    _ids_only[0] = False
    tracer.cache_clear()


def configure_from_env(env: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Spans are always made (their ids go into every log line); they leave the process only
    by OTLP, when OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is set. The sampler follows
    OTEL_TRACES_SAMPLER (default: parent-based, always on). OTEL_SDK_DISABLED=true: none.
    Exporting nothing with the default sampler, an HTTP request's span carries ids only."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    processors: list[SpanProcessor] = []
    if metrics.otlp_wanted(env, "TRACES"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    return install(processors, default_sampler=not env.get("OTEL_TRACES_SAMPLER"))


def force_flush(timeout_millis: int = 2000) -> None:
    """Export the spans still buffered (AWS Lambda freezes the process between invocations)."""
    for provider in _installed:
        provider.force_flush(timeout_millis)


@cache
def tracer() -> trace.Tracer:
    provider = _installed[0] if _installed else trace.get_tracer_provider()
    return provider.get_tracer("fancrm")


# --- carrying the context in message attributes and headers ---------------------------------


def with_trace_context(attributes: Mapping[str, str]) -> dict[str, str]:
    """``attributes`` plus the current span's ``traceparent`` (and ``tracestate``), if any."""
    carrier = dict(attributes)
    _W3C.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> Context | None:
    """The remote parent named by a carrier's ``traceparent``; None when it names none."""
    if TRACEPARENT not in carrier:
        return None
    return _W3C.extract(carrier)


def trace_id_of(carrier: Mapping[str, str]) -> str | None:
    """The trace id in a carrier's ``traceparent`` (version-traceid-spanid-flags)."""
    parts = carrier.get(TRACEPARENT, "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, in the W3C hex forms; None outside any."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_trace_id() -> str | None:
    ids = current_ids()
    return ids[0] if ids else None


# --- spans ------------------------------------------------------------------------------------


@contextmanager
def consuming(name: str, carrier: Mapping[str, str], **attributes: Any) -> Iterator[Span]:
    """A CONSUMER span continuing the trace a queue message carries (a new one without)."""
    with tracer().start_as_current_span(
        name, context=extract(carrier), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def failed(span: Span, reason: str) -> None:
    span.set_status(Status(StatusCode.ERROR, reason))


def _ids_only_span(parent: Context | None) -> Span:
    """A span that only carries ids: what the SDK would make, less the recording that no
    exporter reads (bench/MEASUREMENTS.md, "Spans that carry only ids"). The trace, sampled flag
    and trace state of the caller's ``traceparent`` go on, as the default sampler would have
    it; a new trace is sampled."""
    remote = trace.get_current_span(parent).get_span_context() if parent else None
    generate = _ID_GENERATOR
    if remote is not None and remote.is_valid:
        trace_id, flags, state = remote.trace_id, remote.trace_flags, remote.trace_state
    else:
        trace_id, flags, state = generate.generate_trace_id(), _SAMPLED, None
    context = SpanContext(trace_id, generate.generate_span_id(), False, flags, state)
    return NonRecordingSpan(context)


_ID_GENERATOR = RandomIdGenerator()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def tracing_middleware(app: Any) -> Any:
    """A SERVER span per HTTP request, continuing the caller's ``traceparent`` if it sent one;
    outermost, so that every log line of the request carries its ids."""

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        if _ids_only[0]:
            token = context_api.attach(trace.set_span_in_context(_ids_only_span(extract(headers))))
            try:
                await app(scope, receive, send)
            finally:
                context_api.detach(token)
            return
        status: dict[str, int] = {}

        async def send_with_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        with tracer().start_as_current_span(
            f"{scope['method']} {scope['path']}",
            context=extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
            record_exception=True,
        ) as span:
            try:
                await app(scope, receive, send_with_status)
            finally:
                route = scope.get("path_template")
                if route:  # a low-cardinality name: the route, not the path with its ids
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
                code = status.get("code")
                if code is not None:
                    span.set_attribute("http.response.status_code", code)
                    if code >= 500:
                        failed(span, f"HTTP {code}")

    return middleware
