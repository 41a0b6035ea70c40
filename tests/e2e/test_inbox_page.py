"""The live inbox page (/inbox) in a real browser against `crm dev` as a person runs it: Debian's
chromium driven by Playwright (never `playwright install`, which downloads a browser of its
own; `.ci/run` installs chromium when it can, and without it these tests skip and say why).

The page is signed in with the key the banner prints, sends from its send box and shows the
message go to "read" and the simulated fan's reply arrive, without a reload; then `crm dev`
is stopped, a message is sent from the page while it is down, `crm dev` starts again on the
same data, and the page resumes its stream after the last position it saw and delivers that
message, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.test_crm_dev import free_port

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CLI = [sys.executable, "-c", "from adapters.cli import main; main()"]
# Fans that read everything and answer at once: what the test waits for always happens.
SIMULATOR = {
    "delivery_probability": 1,
    "read_probability": 1,
    "reply_probability": 1,
    "click_probability": 0,
    "purchase_probability": 0,
    "webhook_delay": 0.2,
    "webhook_delay_jitter": 0,
}
# How long the issue lets a fan's reply take to reach the page once the platform sends it
# (the simulator posts it 0.2 s after the read receipt the page has just shown).
REPLY_WITHIN_MS = 2_000
SLOW_MS = 60_000  # for what waits on crm dev starting, the queue and the simulated platform


class Dev:
    """`crm dev` in a child process, its output in a file (a pipe nobody reads would fill
    and stall it)."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        unset = ("DATABASE_URL", "REDIS_URL", "CRM_MASTER_KEY", "ONLYFANS_API_URL")
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env["CRM_DEV_SIMULATOR"] = json.dumps(SIMULATOR)
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [*CLI, "dev", "--port", str(port), "--data-dir", str(data_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    async def key(self) -> str:
        """The key on the banner (it ends with the `crm projections status` hint)."""
        async with asyncio.timeout(120):
            while True:
                text = self.log.read_text()
                if "crm projections status" in text:
                    match = re.search(r"Authorization: Bearer (\S+)", text)
                    assert match, text
                    return match.group(1)
                assert self.process.poll() is None, "crm dev stopped:\n" + text
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = await asyncio.to_thread(self.process.wait, 60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert code == 0, self.log.read_text()[-3000:]


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[tuple[Any, list[str], list[str]]]:
    """A chromium page that may reach localhost only, with the page errors and the URLs it
    tried elsewhere."""
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    errors: list[str] = []
    offsite: list[str] = []
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page()

            async def only_localhost(route: Any) -> None:
                if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                    await route.continue_()
                else:
                    offsite.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_localhost)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors, offsite
        finally:
            await browser.close()


def message_item(page: Any, content: str, status: str | None = None) -> Any:
    selector = '#messages li[data-direction="outgoing"]'
    if status is not None:
        selector += f'[data-status="{status}"]'
    return page.locator(selector).filter(has_text=content)


async def test_the_inbox_shows_a_send_go_to_read_and_the_reply_live_and_resumes_after_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    dev = Dev(tmp_path / "stack", port, tmp_path / "dev-1.log")
    try:
        key = await dev.key()
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:
            fan = await api.post("/api/crm/fans", json={"name": "Fan <b>One</b>"})
            assert fan.status_code == 201, fan.text
            fan_id = fan.json()["fan"]["id"]
            opened = await api.post("/api/crm/conversations", json={"fanId": fan_id})
            assert opened.status_code == 201, opened.text
            conversation_id = opened.json()["id"]

        async with browser_page() as (page, errors, offsite):
            sockets: list[str] = []
            page.on("websocket", lambda socket: sockets.append(socket.url))
            loads: list[str] = []
            page.on("load", lambda: loads.append(page.url))
            await page.goto(f"{base}/inbox")
            await page.fill("#key", key)
            await page.click("#sign-in button[type=submit]")
            await page.wait_for_selector('#connection[data-state="live"]', timeout=SLOW_MS)
            conversation = page.locator(
                f'#conversations li[data-conversation-id="{conversation_id}"]'
            )
            # The fan's name as text, never as markup.
            await conversation.locator(".fan", has_text="Fan <b>One</b>").wait_for(timeout=SLOW_MS)
            await conversation.click()

            # A send from the page goes queued → … → read, live.
            await page.fill("#content", "Hello from the inbox")
            await page.fill("#price", "5")
            await page.click("#send button[type=submit]")
            sent = message_item(page, "Hello from the inbox")
            await sent.wait_for(timeout=SLOW_MS)
            await message_item(page, "Hello from the inbox", "read").wait_for(timeout=SLOW_MS)
            assert "PPV $5.00" in await sent.inner_text()

            # The fan's reply arrives, with the conversation's unread count.
            reply = page.locator('#messages li[data-direction="incoming"]')
            await reply.first.wait_for(timeout=REPLY_WITHIN_MS)
            assert (await reply.first.inner_text()).strip()
            unread = conversation.locator(".unread")
            await page.wait_for_function(
                "el => Number(el.dataset.count) >= 1", arg=await unread.element_handle()
            )
            before_restart = len(sockets)
            assert loads == [f"{base}/inbox"], "the page was reloaded"

            # The API goes away; a message sent meanwhile waits in the page.
            await dev.stop()
            await page.wait_for_selector('#connection[data-state="reconnecting"]')
            await page.fill("#content", "Sent while the API was down")
            await page.click("#send button[type=submit]")
            await message_item(page, "Sent while the API was down", "sending").wait_for()

            dev = Dev(tmp_path / "stack", port, tmp_path / "dev-2.log")
            assert await dev.key() == key
            # It is delivered once the API is back, and read; the stream resumed.
            await message_item(page, "Sent while the API was down", "read").wait_for(
                timeout=SLOW_MS
            )
            await page.wait_for_selector('#connection[data-state="live"]', timeout=SLOW_MS)
            resumed = [parse_qs(urlsplit(url).query) for url in sockets[before_restart:]]
            assert resumed, "the page opened no stream after the restart"
            assert all("after" in query for query in resumed), sockets
            assert all(
                "ticket" in query and key not in url
                for query, url in zip(resumed, sockets[before_restart:], strict=True)
            )
            assert loads == [f"{base}/inbox"], "the page was reloaded"
            assert await message_item(page, "Sent while the API was down").count() == 1

            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:
                listed = await api.get(f"/api/crm/conversations/{conversation_id}/messages")
                sent_out = [
                    m["content"] for m in listed.json()["messages"] if m["direction"] == "out"
                ]
                assert sorted(sent_out) == ["Hello from the inbox", "Sent while the API was down"]

                # The fan is erased while the page shows the conversation: it is erased there.
                erased = await api.delete(f"/api/crm/fans/{fan_id}", params={"erase": "true"})
                assert erased.status_code == 200, erased.text
            await page.locator("#thread-title", has_text="Erased fan").wait_for(timeout=SLOW_MS)
            assert await page.locator("#messages li").count() >= 3  # two sent, replies
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#messages li .content')]"
                ".every(node => node.textContent === 'erased')"
            )
            assert "Hello from the inbox" not in await page.locator("#inbox").inner_text()
        assert errors == []
        assert offsite == []
    finally:
        await dev.stop()
