"""/inbox: the live inbox page (issue 18), plain HTML, CSS and JavaScript from
adapters/http/inbox_page/, served by this app with nothing loaded from elsewhere.

The page holds no data: it asks for an API key, keeps it in the tab (sessionStorage) and
calls the API like any client, the live stream with a ticket. So the routes are public, and
their Content-Security-Policy lets the page load and call this origin only: nothing a fan
writes can run as script, or send the key elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from adapters.http.permissions import public

PAGE_FILES = Path(__file__).with_name("inbox_page")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
ASSETS = ("inbox.js", "inbox.css")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _file(name: str) -> Response[bytes]:
    path = PAGE_FILES / name
    return Response(
        path.read_bytes(),
        media_type=_TYPES[path.suffix],  # litestar adds the charset (utf-8)
        # Revalidated each time: a new release's page never runs with an old script.
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@get("/inbox", include_in_schema=False, **public())
async def inbox_page() -> Response[bytes]:
    return _file("index.html")


@get("/inbox/assets/{name:str}", include_in_schema=False, **public())
async def inbox_asset(name: FromPath[str]) -> Response[bytes]:
    if name not in ASSETS:
        raise NotFoundException(f"the inbox has no file {name!r}")
    return _file(name)
