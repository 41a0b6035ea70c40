"""Real clients of the live stream for tests: a WebSocket (the ``websockets`` library) and
Server-Sent Events (httpx-sse), both over real HTTP to the API served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect

Update = dict[str, Any]
# What a client reads between the updates a test waits for.
NOISE = {"heartbeat", "queue.status", "campaign.progress", "live"}


async def new_ticket(http: httpx.AsyncClient, auth: dict[str, str]) -> str:
    response = await http.post("/api/live/tickets", headers=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["ticket"])


def ws_url(base_url: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return base_url.replace("http://", "ws://") + "/api/live" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def live_socket(
    base_url: str, http: httpx.AsyncClient, auth: dict[str, str], **params: Any
) -> AsyncIterator[ClientConnection]:
    ticket = await new_ticket(http, auth)
    async with connect(ws_url(base_url, ticket=ticket, **params)) as socket:
        yield socket


async def next_update(
    socket: ClientConnection, wanted: Callable[[Update], bool] = lambda _: True
) -> Update:
    """The next update (heartbeats and periodic summaries skipped) that ``wanted`` accepts;
    others are dropped. Bound the wait with asyncio.timeout."""
    while True:
        update = json.loads(await socket.recv())
        if update["type"] not in NOISE and wanted(update):
            return dict(update)


async def updates_from(socket: ClientConnection, count: int) -> list[Update]:
    """The next ``count`` updates, noise skipped."""
    return [await next_update(socket) for _ in range(count)]


@contextlib.asynccontextmanager
async def sse_stream(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> AsyncIterator[AsyncIterator[tuple[str, Update]]]:
    """The SSE stream's events as (event id, update), comments and noise skipped."""
    query = {k: v for k, v in params.items() if v is not None}
    async with aconnect_sse(
        client, "GET", "/api/live/events", headers=headers, params=query, timeout=None
    ) as source:
        assert source.response.status_code == 200, source.response.status_code

        async def events() -> AsyncIterator[tuple[str, Update]]:
            async for event in source.aiter_sse():
                update = json.loads(event.data)
                if update["type"] not in NOISE:
                    yield event.id, update

        yield events()


async def take(events: AsyncIterator[tuple[str, Update]], count: int) -> list[tuple[str, Update]]:
    found = []
    async for event in events:
        found.append(event)
        if len(found) == count:
            break
    return found


async def eventually(condition: Callable[[], Any], interval: float = 0.05) -> None:
    """Poll until ``condition`` (sync or async) holds; callers bound it with asyncio.timeout."""
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
