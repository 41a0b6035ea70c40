"""Give every request a correlation id (taken from X-Correlation-ID or made), bind it to the
logs of everything the request does, echo it back, and log one line per request."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.problems import handle_error

log = structlog.get_logger("http")

_HEADER = b"x-correlation-id"


def correlation_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(_HEADER, b"").decode("latin-1")[:128]
        # The id goes into every event's metadata and log line: one with a control character
        # (NUL cannot even be stored) is replaced rather than trusted.
        usable = incoming.isascii() and incoming.isprintable()
        correlation_id = incoming if incoming and usable else uuid.uuid4().hex
        request_id = uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id, request_id=request_id)
        status: dict[str, Any] = {}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (_HEADER, correlation_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        except Exception as error:
            # Errors of the routes are answered inside this middleware, but an error raised by
            # a middleware within it (the API key check) would be answered outside, through
            # the bare `send`: no correlation id on the 401, and no status in the log line.
            if "code" in status:
                raise
            request: Request[Any, Any, Any] = Request(scope, receive)
            response = handle_error(request, error).to_asgi_response(app=None, request=request)
            await response(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status.get("code"),
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    return middleware
