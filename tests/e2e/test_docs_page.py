"""The OpenAPI docs page works on a machine without internet: Swagger UI's files come from
this app, and a real browser renders the operations without a request leaving localhost.

The browser is Debian's chromium driven by Playwright (never `playwright install`, which
downloads a browser build of its own); `.ci/run` installs chromium when it can.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import uvicorn

from adapters import bootstrap
from adapters.http.app import create_app

pytestmark = pytest.mark.timeout(120)

CHROMIUM = Path("/usr/bin/chromium")
DOCS_PAGES = ["/schema/swagger", "/schema"]


class _References(HTMLParser):
    """Every URL an HTML page makes the browser load: scripts, styles, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("src", "href"):
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.fixture
async def served(container: bootstrap.Container) -> AsyncIterator[str]:
    """The app over real HTTP on a free localhost port, in the test's event loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(container=container), log_config=None, access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:  # uvicorn has no event to wait on
                if serving.done():
                    serving.result()  # it failed to start: its error, not a timeout
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@pytest.mark.parametrize("page", DOCS_PAGES)
async def test_the_docs_page_loads_only_files_this_app_serves(served: str, page: str) -> None:
    async with httpx.AsyncClient(base_url=served) as client:
        docs = await client.get(page)
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")
        urls = references(docs.text)
        assert any(url.endswith("swagger-ui-bundle.js") for url in urls), urls
        for url in urls:
            absolute = urljoin(served + page, url)
            assert absolute.startswith(served + "/"), f"{url} is not this app's"
            asset = await client.get(absolute)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0, url


async def test_the_docs_page_renders_every_operation_in_a_browser_without_internet(
    served: str,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")

    async with httpx.AsyncClient(base_url=served) as client:
        spec = (await client.get("/schema/openapi.json")).json()
    expected = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert ("GET", "/api/crm/fans") in expected

    requested: list[str] = []
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page()

            async def only_localhost(route: object) -> None:
                # Recorded, and refused: the test must not depend on the internet either way.
                url = route.request.url  # type: ignore[attr-defined]
                requested.append(url)
                if urlsplit(url).hostname in ("127.0.0.1", "localhost"):
                    await route.continue_()  # type: ignore[attr-defined]
                else:
                    await route.abort()  # type: ignore[attr-defined]

            await page.route("**/*", only_localhost)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{served}/schema/swagger", wait_until="load")
            # Swagger UI builds the page from the spec after load: wait until it has.
            blocks = page.locator(".opblock")
            try:
                await page.wait_for_function(
                    "n => document.querySelectorAll('.opblock').length >= n",
                    arg=len(expected),
                    timeout=30_000,
                )
            except playwright_api.Error:
                offsite = [url for url in requested if not url.startswith(served + "/")]
                pytest.fail(f"no operations rendered; refused off-site requests: {offsite}")
            shown = set()
            for block in await blocks.all():
                method = await block.locator(".opblock-summary-method").inner_text()
                path = await block.locator(".opblock-summary-path").get_attribute("data-path")
                shown.add((method.strip().upper(), path))
            title = await page.locator(".info .title").inner_text()
        finally:
            await browser.close()

    assert errors == []
    assert shown == expected
    assert re.match(r"fancrm\b", title)
    assert requested, "the browser requested nothing"
    assert [url for url in requested if not url.startswith(served + "/")] == []
