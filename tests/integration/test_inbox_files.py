"""/inbox and its files: served by this app without a key, with a policy that lets the page
load and call this origin only, and nothing it references from elsewhere (the page itself is
tested in a browser: tests/e2e/test_inbox_page.py)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.test_docs_page import references


async def test_the_page_and_its_files_come_from_this_app_without_a_key(
    api: httpx.AsyncClient,
) -> None:
    page = await api.get("/inbox")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    urls = references(page.text)
    assert sorted(urls) == ["/inbox/assets/inbox.css", "/inbox/assets/inbox.js"]
    for url, kind in [(urls[0], "text/css"), (urls[1], "text/javascript")]:
        asset = await api.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"] == f"{kind}; charset=utf-8"
        assert asset.headers["cache-control"] == "no-cache"
        # Nothing fetched from elsewhere: every URL the script builds is this origin's.
        assert not re.search(r"https?://", asset.text), url


async def test_the_page_may_load_and_call_this_origin_only(api: httpx.AsyncClient) -> None:
    policy = (await api.get("/inbox")).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for kind in ("script-src", "style-src", "connect-src"):
        assert directives[kind] == "'self'", kind
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.parametrize("name", ["index.html", "..%2Finbox.py", "other.js", "inbox.JS"])
async def test_nothing_else_is_served_from_the_pages_folder(
    api: httpx.AsyncClient, name: str
) -> None:
    response = await api.get(f"/inbox/assets/{name}")
    assert response.status_code in (401, 404), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
