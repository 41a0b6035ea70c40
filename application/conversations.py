"""Assigning a conversation to a member of the workspace, or to nobody.

Decided on the event store: the conversation's stream (another account's is not found) and
the workspace's (the member must be active there, and the conversation's account within its
scope), never on the members view, which may lag behind a removal. The append holds the
workspace's stream at the version read (a write without events): a member removed, or any
other change to the workspace, between the read and the append makes it a conflict, and the
command runs again on what the log says then.
"""

from __future__ import annotations

from typing import cast

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.ports import EventStore, StreamWrite
from application.streams import handle, load
from application.workspaces import STREAM_TYPE as WORKSPACE_STREAM
from domain.base import DomainEvent
from domain.conversation import Conversation, conversation_stream_id
from domain.errors import InvalidValue
from domain.workspace import Workspace, workspace_stream_id

STREAM_TYPE = "conversation"


class AssignConversation(msgspec.Struct, frozen=True, kw_only=True):
    conversation_id: int
    workspace_id: str  # the caller's, whose members may be assigned
    member_id: str | None  # None: unassign


class Assignment(msgspec.Struct, frozen=True):
    conversation: Conversation
    position: int  # the conversation's last event (this one's if it changed anything)


async def assign_conversation(
    cmd: AssignConversation, ctx: CommandContext, *, store: EventStore
) -> Assignment:
    async def decide(conversation: Conversation) -> StreamWrite | None:
        if cmd.member_id is None:
            conversation.assign(None, member_accounts=None)
            return None
        workspace = await _workspace(store, cmd.workspace_id)
        member = workspace.active_member(cmd.member_id) if workspace is not None else None
        if workspace is None or member is None:
            raise InvalidValue("member_id", "is not an active member of the workspace")
        conversation.assign(cmd.member_id, member_accounts=member.accounts)
        return StreamWrite(workspace.id, WORKSPACE_STREAM, [], workspace.version)

    async def append(conversation: Conversation, hold: StreamWrite | None) -> int | None:
        pending = cast(list[DomainEvent], conversation.collect_events())
        if not pending:
            return None
        expected = pending[0].originator_version - 1
        writes = [StreamWrite(conversation.id, STREAM_TYPE, pending, expected)]
        positions = await store.append_all(
            [*writes, *([hold] if hold else [])], metadata=ctx.metadata()
        )
        return positions[-1]

    handled = await handle(
        store,
        conversation_stream_id(cmd.conversation_id),
        decide,
        ctx,
        stream_type=STREAM_TYPE,
        append=append,
    )
    return Assignment(handled.aggregate, handled.position)


async def _workspace(store: EventStore, workspace_id: str) -> Workspace | None:
    try:
        workspace, _ = await load(store, workspace_stream_id(workspace_id), tenant=workspace_id)
    except NotFound:
        return None  # never written to: a workspace without members
    return cast(Workspace, workspace)
