"""POST /api/onlyfans/webhooks: signed events from the OnlyFans provider.

Not behind API keys: each request is authenticated by its HMAC signature with the secret of
the account it names in X-OnlyFans-Account (X-OnlyFans-Signature, timestamp within 5
minutes). The signature is checked on the raw bytes before anything reads them: whatever the
body, a request that is not signed is a 401. Only then is the body parsed (400 if malformed),
and it must name the same account. A webhook id is processed once; a replay is refused (409)
and changes nothing.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, get_args

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIType, Schema

from adapters.bootstrap import Container
from adapters.http.boundary import check_json_depth, contains_nul
from adapters.http.openapi import header, json_body, responses_for
from adapters.http.permissions import public
from adapters.onlyfans.signing import ACCOUNT_HEADER, SIGNATURE_HEADER, verify
from application.context import CommandContext
from application.errors import AlreadyProcessed, ConcurrencyError, Unauthorized
from application.webhooks import WebhookEvent, WebhookType, handle_webhook

PATH = "/api/onlyfans/webhooks"
# Providers' ids are short tokens ("evt_..."); the id is kept (in the tenant's namespace) to
# refuse replays, so it must be storable and indexable.
MAX_EVENT_ID = 200
MAX_ACCOUNT = 200

EventId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_EVENT_ID, pattern=r"^[\x21-\x7e]+$")
]


class _WebhookBody(msgspec.Struct, kw_only=True, rename="camel"):
    id: EventId
    type: WebhookType
    account: str
    data: dict[str, Any]


_DOCUMENTED = responses_for(
    public=True,
    body=True,
    conflict=True,
    also=(401,),
    why={
        400: "A signed body that is not a webhook event",
        401: "No, bad or stale signature, whatever the body; or the body names another account",
        409: "This event id was already processed",
        422: "The event's data breaks a rule (named in `field`)",
    },
    headers=[
        header(
            ACCOUNT_HEADER,
            "The account whose webhook secret signed the body",
            min_length=1,
            max_length=MAX_ACCOUNT,
        ),
        header(
            SIGNATURE_HEADER,
            "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<raw body>' with the account's secret>;"
            " the time within 5 minutes",
            pattern=r"^t=[0-9]+,v1=[0-9a-f]{64}$",
        ),
    ],
    request_body=json_body(
        Schema(
            type=OpenAPIType.OBJECT,
            required=["id", "type", "account", "data"],
            properties={
                "id": Schema(
                    type=OpenAPIType.STRING,
                    min_length=1,
                    max_length=MAX_EVENT_ID,
                    pattern=r"^[\x21-\x7e]+$",
                    description="The provider's event id: processed once",
                ),
                "type": Schema(type=OpenAPIType.STRING, enum=list(get_args(WebhookType))),
                "account": Schema(
                    type=OpenAPIType.STRING, description="The account of X-OnlyFans-Account"
                ),
                "data": Schema(
                    type=OpenAPIType.OBJECT,
                    description="The event's fields: messageId (sent messages' events),"
                    " fanId and content (message.received), amountCents (message.purchased)",
                ),
            },
        ),
        "The event, signed: the signature is checked on these raw bytes before they are read",
    ),
)


@post(PATH, status_code=200, tags=["webhooks"], **public(), **_DOCUMENTED)
async def receive_webhook(
    request: Request[Any, Any, Any], container: NamedDependency[Container]
) -> Response[dict[str, Any]]:
    raw = await request.body()
    account = await _authentic_account(request, container, raw)
    body = _parse(raw)
    if body.account != account:
        raise Unauthorized("the event names another account than the one that signed it")
    event = WebhookEvent(id=body.id, type=body.type, account=body.account, data=body.data)
    ctx = CommandContext(tenant=account, actor="webhook", correlation_id=f"webhook:{event.id}")
    try:
        position = await handle_webhook(event, ctx, store=container.events, ids=container.ids)
    except AlreadyProcessed:
        raise ConcurrencyError(f"webhook {event.id} was already processed") from None
    return Response({"id": event.id, "status": "processed", "position": position})


async def _authentic_account(
    request: Request[Any, Any, Any], container: Container, raw: bytes
) -> str:
    """The account whose secret signs ``raw``; Unauthorized otherwise (the body unread)."""
    account = request.headers.get(ACCOUNT_HEADER, "")
    secret = None
    if 0 < len(account) <= MAX_ACCOUNT and account.isprintable():
        secret = await container.pool.fetchval(
            "SELECT secret FROM webhook_secrets WHERE tenant_id = $1", account
        )
    if secret is None or not verify(
        secret, raw, request.headers.get(SIGNATURE_HEADER), time.time()
    ):
        raise Unauthorized("bad or stale webhook signature")
    return account


def _parse(raw: bytes) -> _WebhookBody:
    check_json_depth(raw)
    if contains_nul(raw):
        # Nothing of a webhook may hold NUL: Postgres text cannot store it.
        raise ValidationException("not a webhook event: text holds a NUL character")
    try:
        return msgspec.json.decode(raw, type=_WebhookBody)
    except msgspec.DecodeError as error:
        raise ValidationException(f"not a webhook event: {error}") from None
