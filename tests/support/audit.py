"""Reading the audit list in tests: it shows the log in commit order up to the oldest
transaction still open on the server (application/audit.py), so an event just committed may
appear a moment later when another test's transaction is running. Tests wait for it, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

AUDIT_EVENTS = "/api/audit/events"


async def audit_events_when(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    ready: Callable[[list[dict[str, Any]]], bool],
    *,
    params: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """The first page of ``GET /api/audit/events`` once ``ready`` holds for its events (or, at
    the deadline, as it is: the caller's assertions then say what is missing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        page = await http.get(AUDIT_EVENTS, params=params or {}, headers=headers)
        assert page.status_code == 200, page.text
        events: list[dict[str, Any]] = page.json()["events"]
        if ready(events) or loop.time() >= deadline:
            return events
        await asyncio.sleep(0.05)
