"""POST /api/patreon/webhooks/{connectionId}: Patreon's webhooks for one connection.

The connection is named in the path, not a header, because Patreon posts only its own headers
(X-Patreon-Event, X-Patreon-Signature): a webhook is registered with a URI, so the URI is the
one place that can say whose it is (GET /api/platforms/connections gives it as webhookPath).
Not behind API keys: the HMAC-MD5 signature with the connection's webhook secret authenticates
the request, checked on the raw bytes before anything parses them; an unknown connection, one
without a secret, and a bad or missing signature are all the same 401, whatever the body. Only
then is the trigger read (400 if unknown) and the body parsed (400 if not a member document).
A webhook already applied is a 409 and changes nothing (application/patreon_webhooks.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath

from adapters.bootstrap import Container
from adapters.http.boundary import check_json_depth, contains_nul
from adapters.http.openapi import header, responses_for
from adapters.http.permissions import public
from adapters.patreon.jsonapi import decode_member
from adapters.patreon.signing import EVENT_HEADER, SIGNATURE_HEADER, verify
from application.context import CommandContext
from application.errors import AlreadyProcessed, ConcurrencyError, Unauthorized
from application.patreon import PatreonMember
from application.patreon_webhooks import TRIGGERS, handle_patreon_webhook, webhook_key
from application.platform_connections import Connection

PATH = "/api/patreon/webhooks/{connection_id:str}"
MAX_CONNECTION_ID = 64


class PatreonWebhookOut(msgspec.Struct, kw_only=True, rename="camel"):
    status: str
    trigger: str
    fan_id: int | None
    revenue_cents: int


@post(
    PATH,
    status_code=200,
    tags=["webhooks"],
    **public(),
    **responses_for(
        public=True,
        body=True,
        conflict=True,
        also=(401,),
        why={
            400: "A signed body that is not a member document, or an unknown trigger",
            401: "No connection of that id with a webhook secret, or a bad or missing signature",
            409: "This webhook was already applied",
        },
        headers=[
            header(EVENT_HEADER, "The trigger, e.g. members:pledge:create", min_length=1),
            header(
                SIGNATURE_HEADER,
                "Hex HMAC-MD5 of the raw body with the connection's webhook secret",
                pattern=r"^[0-9a-f]{32}$",
            ),
        ],
    ),
)
async def receive_patreon_webhook(
    request: Request[Any, Any, Any],
    container: NamedDependency[Container],
    connection_id: FromPath[str],
) -> PatreonWebhookOut:
    raw = await request.body()
    connection = await _authentic(request, container, connection_id, raw)
    trigger = request.headers.get(EVENT_HEADER, "")
    if trigger not in TRIGGERS:
        raise ValidationException(f"{EVENT_HEADER}: not a members trigger this API handles")
    member = _parse(raw)
    key = webhook_key(trigger, raw)
    ctx = CommandContext(
        tenant=connection.tenant, actor="webhook:patreon", correlation_id=f"webhook:{key[-16:]}"
    )
    try:
        applied = await handle_patreon_webhook(
            trigger,  # type: ignore[arg-type]  # checked against TRIGGERS above
            member,
            key,
            ctx,
            imports=container.imports,
            receipts=container.webhook_receipts,
        )
    except AlreadyProcessed:
        raise ConcurrencyError("this webhook was already applied") from None
    return PatreonWebhookOut(
        status="processed",
        trigger=trigger,
        fan_id=applied.fan_id,
        revenue_cents=applied.revenue_cents,
    )


async def _authentic(
    request: Request[Any, Any, Any], container: Container, connection_id: str, raw: bytes
) -> Connection:
    found = None
    if len(connection_id) <= MAX_CONNECTION_ID:
        found = await container.connections.by_id(connection_id)
    secret = None
    if found is not None and found[0].platform == "patreon":
        secret = found[1].webhook_secret
    if (
        found is None
        or secret is None
        or not verify(secret, raw, request.headers.get(SIGNATURE_HEADER))
    ):
        raise Unauthorized("bad or missing Patreon webhook signature")
    return found[0]


def _parse(raw: bytes) -> PatreonMember:
    check_json_depth(raw)
    if contains_nul(raw):
        raise ValidationException("not a member document: text holds a NUL character")
    try:
        return decode_member(raw)
    except msgspec.DecodeError as error:
        raise ValidationException(f"not a member document: {error}") from None
