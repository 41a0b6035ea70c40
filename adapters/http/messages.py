"""/api/onlyfans/messages: send (the reference's sendMessage and sendBatch), queue status, retry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from msgspec import UNSET

from adapters import metrics
from adapters.bootstrap import Container
from adapters.config import Settings
from adapters.http.context import command_context
from adapters.http.idempotency import idempotency_key, message_id_for, replay_or_run
from adapters.http.messaging_schemas import (
    BatchItemOut,
    BatchOut,
    MessageAcceptedOut,
    QueueStatusOut,
    RetriedOut,
    SendBatchBody,
    SendMessageBody,
)
from adapters.http.openapi import MessageIdPath, responses_for
from adapters.http.permissions import require, requires
from adapters.http.problems import invalid_value
from adapters.http.schemas import decode_strictly
from adapters.postgres.api_keys import Principal
from application import messages, scripts
from application.errors import NotFound
from application.message_streams import load_message
from application.permissions import Permission
from domain.errors import InvalidValue
from domain.message import canonical_message_id

Deps = NamedDependency[Container]
log = structlog.get_logger(__name__)


class MessagesController(Controller):
    path = "/api/onlyfans/messages"
    tags = ["messages"]

    @post(
        "/send",
        status_code=202,
        **requires(Permission.SEND),
        **responses_for(
            body=True,
            idempotent=True,
            found=True,
            why={404: "The scriptId names no script of this account"},
        ),
    )
    async def send(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[SendMessageBody],
    ) -> Response[MessageAcceptedOut]:
        body = decode_strictly(await request.body(), SendMessageBody)
        _require_content(body)
        await _require_ppv(request, container, [body])
        ctx = command_context(request)

        async def run() -> Response[Any]:
            key = idempotency_key(request)
            cmd = _command(
                body,
                container.settings,
                default_id=message_id_for(ctx.tenant, key) if key else None,
            )
            accepted = await messages.queue_message(
                cmd,
                ctx,
                store=container.events,
                ids=container.ids,
                recipients=request.app.state.recipients,
                words=container.words,
                pricing=container.pricing,
            )
            _queued(accepted, ctx.tenant, cmd.recipient_id)
            return Response(
                MessageAcceptedOut(
                    message_id=accepted.message_id,
                    status="queued",
                    queued_at=accepted.queued_at,
                    estimated_send_time=await _estimate(
                        container, accepted.queue, accepted.queued_at
                    ),
                    conversation_id=accepted.conversation_id,
                    position=accepted.position,
                ),
                status_code=202,
            )

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @post(
        "/batch",
        status_code=202,
        **requires(Permission.SEND),
        **responses_for(body=True, idempotent=True),
    )
    async def send_batch(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[SendBatchBody]
    ) -> Response[BatchOut]:
        """Up to 10 messages; each is queued or refused on its own (the reference's sendBatch)."""
        body = decode_strictly(await request.body(), SendBatchBody)
        for index, item in enumerate(body.messages):
            _require_content(item, f" - at `$.messages[{index}]`")
        await _require_ppv(request, container, body.messages)
        ctx = command_context(request)
        if len(body.messages) > messages.MAX_BATCH:
            raise InvalidValue("messages", f"at most {messages.MAX_BATCH} messages per batch")

        async def run() -> Response[Any]:
            key = idempotency_key(request)
            # Refused before queueing (by their place in the batch), and the rest to queue.
            refused: dict[int, messages.BatchItemResult] = {}
            cmds: list[messages.QueueMessage] = []
            for index, item in enumerate(body.messages):
                try:
                    # As for /send: with an Idempotency-Key the key decides each message's id
                    # (by its place in the batch), so a batch run twice queues nothing twice.
                    default_id = message_id_for(ctx.tenant, f"{key}\x00{index}") if key else None
                    cmds.append(_command(item, container.settings, default_id=default_id))
                except InvalidValue as error:
                    refused[index] = messages.BatchItemResult(
                        message_id=item.message_id, error=error.message, field=error.field
                    )
            # One call for the batch: it refuses a message id given twice, among other things.
            outcomes = await messages.queue_messages(
                cmds,
                ctx,
                store=container.events,
                ids=container.ids,
                recipients=request.app.state.recipients,
                words=container.words,
                pricing=container.pricing,
            )
            for cmd, outcome in zip(cmds, outcomes, strict=True):
                if outcome.accepted is not None:
                    _queued(outcome.accepted, ctx.tenant, cmd.recipient_id)
            rest = iter(outcomes)
            results = [
                refused[index] if index in refused else next(rest)
                for index in range(len(body.messages))
            ]
            out = [_batch_item(result) for result in results]
            queued = sum(1 for item in out if item.status == "queued")
            return Response(
                BatchOut(results=out, queued=queued, failed=len(out) - queued), status_code=202
            )

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @get("/status", **requires(Permission.READ), **responses_for(params=False))
    async def status(
        self, request: Request[Principal, Any, Any], container: Deps
    ) -> QueueStatusOut:
        """The whole queue for operators (Permission.OPERATE); for any other key, its own
        account's messages under the same names: waiting (queued or on the queue) as
        ``queueDepth``, failed (waiting for a person's retry) as ``dlqCount``. For operators
        too ``dlqCount`` counts messages still failed (every account's): a dead letter retried
        and delivered since stays in its queue, counted in ``queues`` only. Which of an
        account's waiting messages a sender holds at this instant is the queue's secret (SQS
        counts queues, not accounts): ``messagesInFlight`` is 0 there, and ``queues`` empty."""
        if not request.user.may(Permission.OPERATE):
            own = await container.queue_status.tenant_status(request.user.user_id)
            return QueueStatusOut(
                queue_depth=own.waiting,
                messages_in_flight=0,
                dlq_count=own.failed,
                last_processed_at=own.last_processed_at,
                queues={},
                scope="tenant",
            )
        status = await container.queue_status.status()
        return QueueStatusOut(
            queue_depth=status.depth,
            messages_in_flight=status.in_flight,
            dlq_count=status.dlq_count,
            last_processed_at=status.last_processed_at,
            queues={
                name: {"depth": s.visible, "inFlight": s.in_flight, "dlq": s.dead_letters}
                for name, s in status.queues.items()
            },
            scope="global",
        )

    @post(
        "/{message_id:str}/retry",
        status_code=202,
        **requires(Permission.SEND),
        **responses_for(params=False, found=True, idempotent=True),
    )
    async def retry(
        self, request: Request[Principal, Any, Any], container: Deps, message_id: MessageIdPath
    ) -> Response[RetriedOut]:
        ctx = command_context(request)
        await _require_ppv_to_retry(request, container, canonical_message_id(message_id))

        async def run() -> Response[Any]:
            key = canonical_message_id(message_id)
            changed = await messages.retry_message(
                messages.MessageCommand(message_id=key),
                ctx,
                store=container.events,
                high_priority_from=container.settings.high_priority_from,
            )
            return Response(
                RetriedOut(message_id=key, status="queued", position=changed.position),
                status_code=202,
            )

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)


def _queued(accepted: messages.MessageAccepted, tenant: str, recipient_id: int) -> None:
    if accepted.created:
        metrics.message_queued(tenant, accepted.queue)
        log.info(
            "message queued",
            message_id=accepted.message_id,
            tenant=tenant,
            recipient_id=recipient_id,
            queue=accepted.queue,
        )


def _command(
    body: SendMessageBody, settings: Settings, default_id: str | None = None
) -> messages.QueueMessage:
    recipient = body.recipient_id
    if isinstance(recipient, str):
        if not recipient.isascii() or not recipient.isdigit() or len(recipient) > 18:
            raise InvalidValue("recipient_id", "must be a fan id")
        recipient = int(recipient)
    script_id = None if body.script_id is UNSET else body.script_id
    # Without a script an absent price is free; with one, the script's.
    price = body.price_cents if body.price_cents is not UNSET else None if script_id else 0
    auto = isinstance(price, str)  # "auto", the only string the body admits
    return messages.QueueMessage(
        recipient_id=recipient,
        content=None if body.content is UNSET else body.content,
        media_urls=tuple(body.media_urls),
        attachments=tuple((a.type, a.url) for a in body.attachments),
        price_cents=0 if isinstance(price, str) else price,
        auto_price=auto,
        priority=body.priority,
        message_id=body.message_id or default_id,
        script_id=script_id,
        high_priority_from=settings.high_priority_from,
        platforms=settings.message_platforms,
    )


async def _require_ppv(
    request: Request[Principal, Any, Any], container: Container, bodies: list[SendMessageBody]
) -> None:
    """A PPV (a price above 0) needs Permission.SEND_PPV: the price the request gives, or,
    where it gives none, its script's (looked up only for a key that lacks the permission)."""
    if request.user.may(Permission.SEND_PPV):
        return
    for body in bodies:
        price = body.price_cents
        if price is UNSET and body.script_id is not UNSET:
            ctx = command_context(request)
            price = (await scripts.live_script(container.events, body.script_id, ctx)).price_cents
        if price == "auto" or (isinstance(price, int) and price > 0):
            require(request.user, Permission.SEND_PPV)


async def _require_ppv_to_retry(
    request: Request[Principal, Any, Any], container: Container, message_id: str
) -> None:
    """Retrying a PPV sends a price again: Permission.SEND_PPV, as sending it first did."""
    if request.user.may(Permission.SEND_PPV):
        return
    try:
        message, _ = await load_message(container.events, message_id, tenant=request.user.user_id)
    except NotFound:
        return  # the retry answers 404 itself
    if getattr(message, "price_cents", 0) > 0:
        require(request.user, Permission.SEND_PPV)


def _require_content(body: SendMessageBody, at: str = "") -> None:
    """Content may be left out only for a script's; refused as the decoder refused a body
    without it before scripts existed."""
    if body.content is UNSET and body.script_id is UNSET:
        raise ValidationException(f"Object missing required field `content`{at}")


def _batch_item(result: messages.BatchItemResult) -> BatchItemOut:
    if result.accepted is not None:
        return BatchItemOut(
            message_id=result.accepted.message_id,
            status="queued",
            queued_at=result.accepted.queued_at,
        )
    # As the problem+json of the same mistake in /send: its field and text, by API names.
    field, error = (
        invalid_value(result.field, result.error or "") if result.field else (None, result.error)
    )
    return BatchItemOut(message_id=result.message_id, status="failed", error=error, field=field)


async def _estimate(container: Container, queue: str, queued_at: datetime) -> datetime | None:
    """When the sender should reach this message: what is ahead of it in the queues, at the
    configured send rate. One-to-one replies (high) only wait behind other replies. None when
    the queues cannot be counted now: the message is queued, and an estimate never turns that
    success into an error (the status itself falls back to PostgreSQL without Redis)."""
    try:
        status = await container.queue_status.status()
    except Exception as error:
        log.warning("send estimate left out", error=type(error).__name__)
        return None
    ahead = status.queues["high"].visible
    if queue == "normal":
        ahead += status.queues["normal"].visible
    seconds = (ahead + 1) / container.settings.rate_limit_per_second
    return queued_at + timedelta(seconds=seconds)
