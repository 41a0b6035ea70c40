"""/api/onlyfans/dlq: the dead-lettered messages, and redriving them (application/dead_letters.py).

Who sees what: a creator key lists and redrives its own account's dead letters; a key with
Permission.OPERATE lists every account's (it runs no commands: operators redrive others'
with ``crm dlq redrive``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body as BodyParam

from adapters.bootstrap import Container
from adapters.http.context import command_context
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.http.schemas import Body, decode_strictly
from adapters.postgres.api_keys import Principal
from application import dead_letters
from application.message_queries import MessagingReadModel
from application.permissions import Permission
from domain.errors import InvalidValue

Deps = NamedDependency[Container]
MAX_REDRIVE_IDS = 1000


class DeadLetterOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    message_id: str
    queue: str
    # Why it failed, as the log recorded it (or as the queue tells, until the log does).
    reason: str
    attempts: int  # tries at the platform before the queue gave up on it
    first_failure_at: datetime | None
    last_failure_at: datetime | None
    queued_at: datetime | None  # when this copy went onto its queue
    status: str | None  # the message's, from the messages view (None: not there yet)
    tenant: str | None = None  # shown to operators only


class DeadLettersOut(msgspec.Struct, kw_only=True, rename="camel"):
    entries: list[DeadLetterOut]
    count: int
    scope: str  # "tenant" or "global"


class RedriveBody(Body):
    message_ids: list[str] | None = None


class RedrivenOut(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    message_id: str
    result: str  # requeued: on its way again; cleared: nothing to send, the entry removed
    position: int | None = None


class RedriveOut(msgspec.Struct, kw_only=True, rename="camel"):
    redriven: list[RedrivenOut]
    requeued: int
    cleared: int


class DeadLetterController(Controller):
    path = "/api/onlyfans/dlq"
    tags = ["messages"]

    @get(**requires(Permission.READ), **responses_for(params=False))
    async def list_dead_letters(
        self, request: Request[Principal, Any, Any], container: Deps
    ) -> DeadLettersOut:
        operator = request.user.may(Permission.OPERATE)
        entries = await dead_letters.dead_letters(
            container.queue, tenant=None if operator else request.user.user_id
        )
        out = await describe(container.messaging, entries, with_tenant=operator)
        return DeadLettersOut(entries=out, count=len(out), scope="global" if operator else "tenant")

    @post(
        "/redrive",
        status_code=200,
        **requires(Permission.SEND),
        **responses_for(body=True, idempotent=True),
    )
    async def redrive(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: Annotated[RedriveBody | None, BodyParam()] = None,
    ) -> Response[RedriveOut]:
        """All of the account's dead letters, or those of ``messageIds``: each message back on
        its way once (a retry in its history), its dead letter removed."""
        raw = await request.body()
        # No body, or JSON null (the schema allows it: the body is optional), means all.
        body = RedriveBody() if raw.strip() in (b"", b"null") else decode_strictly(raw, RedriveBody)
        if body.message_ids is not None and len(body.message_ids) > MAX_REDRIVE_IDS:
            raise InvalidValue("message_ids", f"at most {MAX_REDRIVE_IDS} per request")
        ctx = command_context(request)

        async def run() -> Response[Any]:
            results = await dead_letters.redrive(
                container.queue,
                container.events,
                actor=ctx.actor,
                correlation_id=ctx.correlation_id,
                tenant=ctx.tenant,
                message_ids=body.message_ids,
                high_priority_from=container.settings.high_priority_from,
            )
            return Response(redrive_out(results))

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)


async def describe(
    messaging: MessagingReadModel,
    entries: list[dead_letters.DeadLetterEntry],
    *,
    with_tenant: bool,
) -> list[DeadLetterOut]:
    """Each dead letter with its message's failure, as the messages view has it."""
    out = []
    for entry in entries:
        view = await messaging.get_message(entry.tenant, entry.message_id)
        reason = view.failure_reason if view is not None else None
        out.append(
            DeadLetterOut(
                message_id=entry.message_id,
                queue=entry.queue,
                reason=reason or f"dead-lettered after {entry.receive_count} receives",
                attempts=entry.receive_count,
                first_failure_at=view.first_failed_at or view.failed_at if view else None,
                last_failure_at=view.failed_at if view else None,
                queued_at=entry.sent_at,
                status=view.status if view else None,
                tenant=entry.tenant if with_tenant else None,
            )
        )
    return out


def redrive_out(results: list[dead_letters.Redriven]) -> RedriveOut:
    requeued = sum(1 for r in results if r.result == "requeued")
    return RedriveOut(
        redriven=[
            RedrivenOut(message_id=r.message_id, result=r.result, position=r.position)
            for r in results
        ],
        requeued=requeued,
        cleared=len(results) - requeued,
    )
