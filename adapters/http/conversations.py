"""/api/crm/conversations and messages: the reference's ConversationsRepository and
MessagesRepository operations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import replay_or_run
from adapters.http.messaging_schemas import (
    AssignedOut,
    AssigneeBody,
    ConversationCreatedOut,
    ConversationListOut,
    ConversationOut,
    CreateConversationBody,
    MessageListOut,
    MessageOut,
)
from adapters.http.openapi import MessageIdPath, responses_for
from adapters.http.permissions import requires
from adapters.http.schemas import decode_strictly
from adapters.postgres.api_keys import Principal
from application import messages
from application.conversations import AssignConversation, Assignment, assign_conversation
from application.errors import NotFound
from application.message_queries import (
    UNASSIGNED,
    ConversationView,
    MessageFilter,
    UnassignedType,
)
from application.permissions import Permission
from domain.errors import InvalidValue
from domain.message import Status

log = structlog.get_logger(__name__)
Deps = NamedDependency[Container]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
MinPosition = Annotated[int | None, QueryParameter(name="minPosition", ge=1, le=2**63 - 1)]


class ConversationsController(Controller):
    path = "/api/crm/conversations"
    tags = ["conversations"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_conversations(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        assigned_to: Annotated[
            str | None,
            QueryParameter(
                name="assignedTo",
                description="A member's id, `me` (the calling member) or `none` (unassigned)",
                min_length=1,
                max_length=200,
            ),
        ] = None,
        min_position: MinPosition = None,
    ) -> ConversationListOut:
        """The account's conversations, newest activity first; one member's, or the
        unassigned ones, with ``assignedTo``."""
        assignee = _assignee(request.user, assigned_to)
        await read_your_writes(request, container, ["conversations"], min_position)
        page = await container.messaging.list_conversations(
            request.user.user_id, limit, cursor, assignee
        )
        return ConversationListOut(
            conversations=[ConversationOut.from_view(v) for v in page.items],
            next_cursor=page.next_cursor,
        )

    @get(
        "/{conversation_id:int}",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def get_conversation(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        conversation_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> dict[str, ConversationOut]:
        await read_your_writes(request, container, ["conversations"], min_position)
        view = await container.messaging.get_conversation(request.user.user_id, conversation_id)
        if view is None:
            raise NotFound(f"conversation {conversation_id}")
        return {"conversation": ConversationOut.from_view(view)}

    @get(
        "/{conversation_id:int}/messages",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def list_messages(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        conversation_id: FromPath[int],
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> MessageListOut:
        # The page comes from the messages view, but whether the conversation exists from the
        # conversations view: both must have reached the position, or a fresh conversation's
        # first message reads as 404.
        await read_your_writes(request, container, ["conversations", "messages"], min_position)
        tenant = request.user.user_id
        if await container.messaging.get_conversation(tenant, conversation_id) is None:
            raise NotFound(f"conversation {conversation_id}")
        page = await container.messaging.list_messages(tenant, conversation_id, limit, cursor)
        return MessageListOut(
            messages=[MessageOut.from_view(v) for v in page.items], next_cursor=page.next_cursor
        )

    @post(
        **requires(Permission.SEND),
        **responses_for(body=True, idempotent=True, success={200: ConversationCreatedOut}),
    )
    async def create_conversation(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[CreateConversationBody],
    ) -> Response[ConversationCreatedOut]:
        body = decode_strictly(await request.body(), CreateConversationBody)
        ctx = command_context(request)

        async def run() -> Response[Any]:
            conversation_id, position = await messages.start_conversation(
                messages.StartConversation(fan_id=body.fan_id, platform=body.platform),
                ctx,
                store=container.events,
                ids=container.ids,
            )
            return Response(
                ConversationCreatedOut(id=conversation_id, fan_id=body.fan_id, position=position),
                status_code=201 if position is not None else 200,
            )

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @put(
        "/{conversation_id:int}/assignee",
        status_code=200,
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(body=True, found=True, conflict=True),
    )
    async def assign(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        conversation_id: FromPath[int],
        data: JSONBody[AssigneeBody],
    ) -> AssignedOut:
        """Assign the conversation to an active member of the workspace who may act on its
        account, or to nobody (``memberId``: null). The same again changes nothing."""
        body = decode_strictly(await request.body(), AssigneeBody)
        tenant = request.user.user_id
        assigned = await assign_conversation(
            AssignConversation(
                conversation_id=conversation_id,
                workspace_id=request.user.workspace_id,
                member_id=body.member_id,
            ),
            command_context(request),
            store=container.events,
        )
        return await _assigned_answer(container, tenant, assigned)


class CrmMessagesController(Controller):
    path = "/api/crm/messages"
    tags = ["conversations"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_messages(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        status: Annotated[
            str | None, QueryParameter(description=f"One of {', '.join(get_args(Status))}")
        ] = None,
        conversation_id: Annotated[
            int | None, QueryParameter(name="conversationId", ge=-(2**63), le=2**63 - 1)
        ] = None,
        campaign_id: Annotated[
            int | None, QueryParameter(name="campaignId", ge=-(2**63), le=2**63 - 1)
        ] = None,
        since: Annotated[
            datetime | None, QueryParameter(name="from", description="Queued at or after")
        ] = None,
        until: Annotated[
            datetime | None, QueryParameter(name="to", description="Queued before")
        ] = None,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> MessageListOut:
        """The account's messages, newest queued first: the failed ones with
        ``status=failed``, a campaign's, a conversation's, those queued in a time range."""
        if status is not None and status not in get_args(Status):
            raise InvalidValue("status", f"must be one of {', '.join(get_args(Status))}")
        where = MessageFilter(
            status=status,
            conversation_id=conversation_id,
            campaign_id=campaign_id,
            since=_aware("from", since),
            until=_aware("to", until),
        )
        await read_your_writes(request, container, ["messages"], min_position)
        page = await container.messaging.search_messages(request.user.user_id, where, limit, cursor)
        return MessageListOut(
            messages=[MessageOut.from_view(v) for v in page.items], next_cursor=page.next_cursor
        )

    @get(
        "/{message_id:str}",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def get_message(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        message_id: MessageIdPath,
        min_position: MinPosition = None,
    ) -> dict[str, MessageOut]:
        await read_your_writes(request, container, ["messages"], min_position)
        view = await container.messaging.get_message(request.user.user_id, message_id)
        if view is None:
            raise NotFound(f"message {message_id}")
        return {"message": MessageOut.from_view(view)}

    @post(
        "/{message_id:str}/read",
        status_code=200,
        **requires(Permission.SEND),
        **responses_for(params=False, found=True, idempotent=True),
    )
    async def mark_read(
        self, request: Request[Principal, Any, Any], container: Deps, message_id: MessageIdPath
    ) -> Response[dict[str, Any]]:
        try:
            key = str(uuid.UUID(message_id))
        except ValueError:
            raise NotFound(f"message {message_id}") from None
        ctx = command_context(request)

        async def run() -> Response[Any]:
            changed = await messages.mark_message_read(
                messages.MessageCommand(message_id=key), ctx, store=container.events
            )
            return Response(
                {"messageId": key, "status": changed.message.status, "position": changed.position}
            )

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)


async def _assigned_answer(container: Container, tenant: str, assigned: Assignment) -> AssignedOut:
    """The view's counts as they are now, the assignee the command's: after the commit,
    nothing may fail this answer (neither a view that lags nor one that fails to answer)."""
    conversation = assigned.conversation
    try:
        view = await container.messaging.get_conversation(tenant, conversation.conversation_id)
    except Exception:
        log.warning("conversation view unreadable after a command", exc_info=True)
        view = None
    if view is None:  # not readable, or not started in the view yet: no message counted
        view = ConversationView(
            conversation_id=conversation.conversation_id,
            tenant=tenant,
            fan_id=conversation.fan_id,
            platform=conversation.platform,
            created_at=conversation.created_on,
            last_message_at=None,
            message_count=0,
        )
    view = msgspec.structs.replace(view, assigned_to=conversation.assigned_to)
    return AssignedOut(conversation=ConversationOut.from_view(view), position=assigned.position)


def _assignee(principal: Principal, asked: str | None) -> str | UnassignedType | None:
    """``assignedTo`` as the read model takes it: a member id, UNASSIGNED, or None (all)."""
    if asked == "none":
        return UNASSIGNED
    if asked == "me":
        if principal.member_id is None:
            raise InvalidValue("assigned_to", "me: this key is no member's (name a member's id)")
        return principal.member_id
    return asked


def _aware(name: str, at: datetime | None) -> datetime | None:
    """Times on the wire carry their zone (DESIGN: UTC, ISO 8601); one without is ambiguous."""
    if at is None:
        return None
    if at.tzinfo is None:
        raise InvalidValue(name, "must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise InvalidValue(name, "is out of range") from None
