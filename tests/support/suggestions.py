"""Helpers for the reply suggestions' tests: an account's history written through the API and
the platform's webhooks (fans write, the account answers, fans reply or buy)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from adapters.bootstrap import Container
from application.context import CommandContext
from application.messages import record_sent
from application.webhooks import WebhookEvent, handle_webhook

Headers = dict[str, str]


class History:
    """One tenant's conversations, written as its creator and its fans would."""

    def __init__(self, container: Container, api: httpx.AsyncClient, auth: Headers, tenant: str):
        self.container = container
        self.api = api
        self.auth = auth
        self.ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)

    async def fan(self, name: str, handle: str | None = None) -> int:
        body = {"name": name, "handle": handle or f"{name.lower()}_{uuid.uuid4().hex[:6]}"}
        response = await self.api.post("/api/crm/fans", json=body, headers=self.auth)
        assert response.status_code == 201, response.text
        return int(response.json()["fan"]["id"])

    async def fan_writes(self, fan_id: int, text: str) -> None:
        await self._webhook(
            "message.received",
            fanId=fan_id,
            platformMessageId=f"p-{uuid.uuid4().hex}",
            text=text,
        )

    async def account_writes(self, fan_id: int, content: str, price_cents: int = 0) -> str:
        body: dict[str, Any] = {"recipientId": fan_id, "content": content}
        if price_cents:
            body["priceCents"] = price_cents
        response = await self.api.post("/api/onlyfans/messages/send", json=body, headers=self.auth)
        assert response.status_code == 202, response.text
        return str(response.json()["messageId"])

    async def fan_buys(self, message_id: str, amount_cents: int) -> None:
        await record_sent(message_id, f"p-{message_id}", self.ctx, store=self.container.events)
        await self._webhook("message.purchased", messageId=message_id, amountCents=amount_cents)

    async def conversation(self, fan_id: int) -> int:
        response = await self.api.post(
            "/api/crm/conversations", json={"fanId": fan_id}, headers=self.auth
        )
        assert response.status_code == 200, response.text
        return int(response.json()["id"])

    async def last_fan_message(self, conversation_id: int) -> str:
        response = await self.api.get(
            f"/api/crm/conversations/{conversation_id}/messages", headers=self.auth
        )
        assert response.status_code == 200, response.text
        return next(m["id"] for m in response.json()["messages"] if m["direction"] == "in")

    async def _webhook(self, kind: str, **data: Any) -> None:
        event = WebhookEvent(id=uuid.uuid4().hex, type=kind, account="acct", data=data)  # type: ignore[arg-type]
        await handle_webhook(event, self.ctx, store=self.container.events, ids=self.container.ids)


async def worked_history(history: History) -> dict[str, int]:
    """Three replies that worked: a PPV bought after "doing tonight", a free reply answered
    after "doing this weekend", a thank-you answered after praise, and one never answered.
    The fans' ids by name."""
    ann = await history.fan("Ann", "ann_rose")
    await history.fan_writes(ann, "what are you doing tonight?")
    bought = await history.account_writes(
        ann, "Thinking of you Ann, want to see what I am doing?", 1500
    )
    await history.fan_buys(bought, 1500)
    bea = await history.fan("Bea", "bea_b")
    await history.fan_writes(bea, "what are you doing this weekend")
    await history.account_writes(bea, "Just relaxing Bea, and you?")
    await history.fan_writes(bea, "same here")
    cat = await history.fan("Cat", "cat_c")
    await history.fan_writes(cat, "I love your photos")
    await history.account_writes(cat, "Thank you @cat_c!")
    await history.fan_writes(cat, "welcome")
    eve = await history.fan("Eve", "eve_e")
    await history.fan_writes(eve, "what are you doing tonight")
    await history.account_writes(eve, "Never answered, Eve")
    return {"Ann": ann, "Bea": bea, "Cat": cat, "Eve": eve}
