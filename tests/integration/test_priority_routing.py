"""The priority that sends a message to the high-priority queue is configuration."""

from __future__ import annotations

import httpx
import msgspec

from adapters import bootstrap
from adapters.http.app import create_app


async def test_the_configured_threshold_routes_messages_to_the_high_queue(
    container: bootstrap.Container, api_key: str
) -> None:
    settings = msgspec.structs.replace(container.settings, high_priority_from=3)
    app = create_app(container=bootstrap.Container(**{**vars(container), "settings": settings}))
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=auth
    ) as http:
        fan = (await http.post("/api/crm/fans", json={"name": "Routed"})).json()["fan"]
        queues = {}
        for priority in (2, 3, 9):
            sent = await http.post(
                "/api/onlyfans/messages/send",
                json={"recipientId": fan["id"], "content": "hi", "priority": priority},
            )
            assert sent.status_code == 202, sent.text
            queues[priority] = await container.pool.fetchval(
                "SELECT queue FROM outbox WHERE message_id = $1", sent.json()["messageId"]
            )
    assert queues == {2: "normal", 3: "high", 9: "high"}
