"""Rules every request meets before a handler reads it: no NUL in the path, the query string
or a header, no JSON nested deeper than anything the API accepts.

Postgres text cannot hold NUL, and msgspec decodes nesting by recursion (RecursionError, a
500, at about a thousand levels): both are refused here, once for every route, rather than at
each place a value goes.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.exceptions import ValidationException
from litestar.types import ASGIApp, Receive, Scope, Send

from domain.errors import InvalidValue

# No body of this API nests more than a few levels; a webhook's data a few more.
MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_OPENERS = frozenset(b"[{")
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")


def check_json_depth(raw: bytes) -> None:
    """ValidationException (400) if ``raw`` nests arrays or objects deeper than allowed."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return  # the common body: too few brackets to be too deep
    depth = 0
    for byte in _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENERS else -1
        if depth > MAX_JSON_DEPTH:
            raise ValidationException(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def contains_nul(raw: bytes) -> bool:
    """Whether JSON text holds a NUL character (``\\u0000``, not an escaped backslash)."""
    return _JSON_NUL.search(raw) is not None


_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*+\\u0000")


class BoundedRequest(Request[Any, Any, Any]):
    """litestar parses a handler's ``data`` through ``json()``: the depth is checked first."""

    async def json(self) -> Any:
        check_json_depth(await self.body())
        return await super().json()


def reject_nul_middleware(app: ASGIApp) -> ASGIApp:
    """A NUL in the path, a query parameter or a header is a 422 naming where it was."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                raise InvalidValue("path", "must not contain NUL characters")
            query: bytes = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:
                raise InvalidValue(_nul_parameter(query), "must not contain NUL characters")
            for name, value in scope["headers"]:
                if b"\x00" in value:
                    raise InvalidValue(_header_name(name), "must not contain NUL characters")
        await app(scope, receive, send)

    return middleware


def _header_name(raw: bytes) -> str:
    # ASGI gives names lower-cased: 'idempotency-key' is reported as 'Idempotency-Key'.
    return "-".join(part.capitalize() for part in raw.decode("latin-1").split("-"))


def _nul_parameter(query: bytes) -> str:
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return "query"
