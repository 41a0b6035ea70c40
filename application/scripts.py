"""Script commands (saved replies): write, change, delete; and the script a send is written
from. Each reads the script's stream, lets the Script decide, appends (application.streams)."""

from __future__ import annotations

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.ports import EventStore, IdAllocator
from application.streams import handle, load, save
from domain.errors import Gone, InvalidValue
from domain.message import attachment_type_of
from domain.script import Script, script_stream_id

STREAM_TYPE = "script"


class WriteScript(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    content: str
    price_cents: int = 0
    media_urls: tuple[str, ...] = ()
    # Usable from every account of the workspace: written on its founding account.
    shared: bool = False


class ChangeScript(msgspec.Struct, frozen=True, kw_only=True):
    """What is None stays as it is."""

    script_id: int
    name: str | None = None
    content: str | None = None
    price_cents: int | None = None
    media_urls: tuple[str, ...] | None = None


class ScriptChanged(msgspec.Struct, frozen=True):
    script: Script
    position: int


async def create_script(
    cmd: WriteScript, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> ScriptChanged:
    if cmd.shared:
        if ctx.workspace_id is None:
            raise InvalidValue("scope", "this key belongs to no workspace")
        ctx = msgspec.structs.replace(ctx, tenant=ctx.workspace_id)
    script = Script.write(
        script_id=await ids.next_id("script"),
        tenant=ctx.tenant,
        name=cmd.name,
        content=cmd.content,
        price_cents=cmd.price_cents,
        attachments=_attachments(cmd.media_urls),
        shared=cmd.shared,
    )
    position = await save(store, script, STREAM_TYPE, ctx)
    assert position is not None
    return ScriptChanged(script, position)


async def update_script(
    cmd: ChangeScript, ctx: CommandContext, *, store: EventStore
) -> ScriptChanged:
    async def decide(script: Script) -> bool:
        return script.update(
            name=cmd.name,
            content=cmd.content,
            price_cents=cmd.price_cents,
            attachments=None if cmd.media_urls is None else _attachments(cmd.media_urls),
        )

    handled = await handle(
        store, script_stream_id(cmd.script_id), decide, ctx, stream_type=STREAM_TYPE
    )
    return ScriptChanged(handled.aggregate, handled.position)


async def delete_script(script_id: int, ctx: CommandContext, *, store: EventStore) -> ScriptChanged:
    async def decide(script: Script) -> None:
        script.delete()

    handled = await handle(store, script_stream_id(script_id), decide, ctx, stream_type=STREAM_TYPE)
    return ScriptChanged(handled.aggregate, handled.position)


async def live_script(store: EventStore, script_id: int, ctx: CommandContext) -> Script:
    """The tenant's script, or one its workspace shares, as the log has it now: NotFound if
    it is unknown, deleted or another account's (never told apart from unknown)."""
    script = await _script_of(store, script_id, ctx.tenant)
    workspace = ctx.workspace_id
    if script is None and workspace is not None and workspace != ctx.tenant:
        shared = await _script_of(store, script_id, workspace)
        script = shared if shared is not None and shared.shared else None
    if script is None:
        raise NotFound(f"script {script_id}")
    if script.deleted:
        raise Gone(f"script {script_id} was deleted")
    return script


async def _script_of(store: EventStore, script_id: int, tenant: str) -> Script | None:
    try:
        script, _ = await load(store, script_stream_id(script_id), tenant=tenant)
    except NotFound:
        return None
    return script if isinstance(script, Script) else None


def _attachments(media_urls: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(attachment_type_of(url), url) for url in media_urls]
