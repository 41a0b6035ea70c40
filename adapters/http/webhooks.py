"""POST /api/onlyfans/webhooks: signed events from the OnlyFans provider.

Not behind API keys: each request is authenticated by its HMAC signature with the secret of
the account it names (X-OnlyFans-Signature, timestamp within 5 minutes). A webhook id is
processed once; a replay is refused (409) and changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException

from adapters.bootstrap import Container
from adapters.http.permissions import public
from adapters.onlyfans.signing import SIGNATURE_HEADER, verify
from application.context import CommandContext
from application.errors import AlreadyProcessed, ConcurrencyError, Unauthorized
from application.webhooks import WebhookEvent, handle_webhook

PATH = "/api/onlyfans/webhooks"


class _Account(msgspec.Struct):
    account: str


@post(PATH, status_code=200, tags=["webhooks"], **public())
async def receive_webhook(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Response[dict[str, Any]]:
    raw = await request.body()
    try:
        account = msgspec.json.decode(raw, type=_Account).account
    except msgspec.DecodeError as error:
        raise ValidationException(f"not a webhook event: {error}") from None
    secret = await container.pool.fetchval(
        "SELECT secret FROM webhook_secrets WHERE tenant_id = $1", account
    )
    if secret is None or not verify(
        secret, raw, request.headers.get(SIGNATURE_HEADER), time.time()
    ):
        raise Unauthorized("bad or stale webhook signature")
    try:
        event = msgspec.json.decode(raw, type=WebhookEvent)
    except msgspec.DecodeError as error:
        raise ValidationException(f"not a webhook event: {error}") from None
    ctx = CommandContext(tenant=account, actor="webhook", correlation_id=f"webhook:{event.id}")
    try:
        position = await handle_webhook(event, ctx, store=container.events, ids=container.ids)
    except AlreadyProcessed:
        raise ConcurrencyError(f"webhook {event.id} was already processed") from None
    return Response({"id": event.id, "status": "processed", "position": position})
