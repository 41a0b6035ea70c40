"""Fan commands and their handlers: read the stream, let the Fan decide, append."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, cast

import msgspec

from application.context import CommandContext
from application.errors import ClaimTaken, ConcurrencyError, NotFound
from application.ports import Claim, EventStore, IdAllocator, StreamWrite
from application.streams import handle, load
from domain.base import DomainEvent
from domain.fan import Fan, HandleTaken, fan_stream_id, handle_key

# How often a command takes over a handle whose holder, per the log, no longer holds it
# before giving up: each takeover that loses means that holder claimed it again meanwhile.
TAKEOVERS = 3

STREAM_TYPE = "fan"


class CreateFan(msgspec.Struct, frozen=True, kw_only=True):
    platform: str = "onlyfans"
    platform_id: str | None = None
    name: str | None = None
    handle: str | None = None
    email: str | None = None
    value_cents: int = 0
    tags: tuple[str, ...] = ()
    notes: str | None = None
    subscribed_at: date | None = None


class UpdateFan(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int
    changes: dict[str, Any]
    expected_version: int | None = None


class DeleteFan(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int
    expected_version: int | None = None


class EraseFan(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int


class FanChanged(msgspec.Struct, frozen=True):
    """The fan as the command left it, and the log position a reader can wait for."""

    fan: Fan
    position: int


async def create_fan(
    cmd: CreateFan, ctx: CommandContext, *, store: EventStore, ids: IdAllocator
) -> FanChanged:
    fan = Fan.register(
        fan_id=await ids.next_id("fan"),
        tenant=ctx.tenant,
        platform=cmd.platform,
        platform_id=cmd.platform_id,
        name=cmd.name,
        handle=cmd.handle,
        email=cmd.email,
        value_cents=cmd.value_cents,
        tags=cmd.tags,
        notes=cmd.notes,
        subscribed_at=cmd.subscribed_at,
    )
    position = await _save(store, fan, ctx, held=None)
    assert position is not None
    return FanChanged(fan, position)


async def update_fan(cmd: UpdateFan, ctx: CommandContext, *, store: EventStore) -> FanChanged:
    async def decide(fan: Fan) -> str | None:
        held = fan.held_handle
        fan.update(**cmd.changes)
        return held

    return await _handle(store, cmd.fan_id, decide, ctx, cmd.expected_version)


async def delete_fan(cmd: DeleteFan, ctx: CommandContext, *, store: EventStore) -> FanChanged:
    async def decide(fan: Fan) -> str | None:
        held = fan.held_handle
        fan.delete()
        return held

    return await _handle(store, cmd.fan_id, decide, ctx, cmd.expected_version)


async def erase_fan(cmd: EraseFan, ctx: CommandContext, *, store: EventStore) -> FanChanged:
    """Right to erasure: the fan's personal data becomes unreadable everywhere, for good."""

    async def decide(fan: Fan) -> str | None:
        held = handle_key(fan.platform, fan.handle)  # a deleted fan's too: erasure forgets all
        fan.erase()
        return held

    return await _handle(store, cmd.fan_id, decide, ctx, None)


async def _handle(
    store: EventStore,
    fan_id: int,
    decide: Callable[[Fan], Awaitable[str | None]],
    ctx: CommandContext,
    expected_version: int | None,
) -> FanChanged:
    """Read the fan (at ``expected_version`` if the caller pinned one: a conflict is then
    the caller's to see), decide, append with the handle it held before (``decide``'s
    answer) released and its new one claimed."""

    async def append(fan: Fan, held: str | None) -> int | None:
        return await _save(store, fan, ctx, held=held)

    handled = await handle(
        store,
        fan_stream_id(fan_id),
        decide,
        ctx,
        stream_type=STREAM_TYPE,
        load_stream=lambda: _load_expected(store, fan_id, ctx, expected_version),
        append=append,
        retry=expected_version is None,
    )
    return FanChanged(handled.aggregate, handled.position)


async def _load_expected(
    store: EventStore, fan_id: int, ctx: CommandContext, expected_version: int | None
) -> tuple[Fan, int]:
    fan, position = await load(store, fan_stream_id(fan_id), tenant=ctx.tenant)
    if expected_version is not None and fan.version != expected_version:
        raise ConcurrencyError(f"fan {fan_id} is at version {fan.version}, not {expected_version}")
    return fan, position


async def _save(
    store: EventStore, fan: Fan, ctx: CommandContext, *, held: str | None
) -> int | None:
    """Append the fan's pending events; with them, claim its handle if it changed (one live fan
    per handle, platform and tenant) and release the handle it ``held`` before. The claim is
    decided in the append's transaction, never on the fans read model, which may lag."""
    pending = cast(list[DomainEvent], fan.collect_events())
    if not pending:
        return None
    wanted = fan.held_handle
    write = StreamWrite(
        fan.id,
        STREAM_TYPE,
        pending,
        expected_version=pending[0].originator_version - 1,
        claims=(Claim(wanted),) if wanted is not None and wanted != held else (),
        releases=(held,) if held is not None and held != wanted else (),
    )
    for _ in range(TAKEOVERS):
        try:
            positions = await store.append_all([write], metadata=ctx.metadata())
        except ClaimTaken as taken:
            holder = await _live_holder(store, taken.holder.stream_id, taken.key, ctx.tenant)
            if holder is not None:
                raise HandleTaken(holder) from None
            # The index remembers a holder that renamed, or was deleted, before handles were
            # claimed (or by an import): the log says the handle is free.
            claim = Claim(taken.key, replaces=taken.holder)
            write = msgspec.structs.replace(write, claims=(claim,))
        else:
            return positions[-1]
    raise ConcurrencyError("the handle kept changing hands: try again")


async def _live_holder(store: EventStore, stream_id: str, key: str, tenant: str) -> int | None:
    """The id of the fan of ``stream_id`` if, as the log has it now, it holds ``key``."""
    try:
        fan, _ = await load(store, stream_id, tenant=tenant)
    except NotFound:
        return None
    if not isinstance(fan, Fan) or fan.held_handle != key:
        return None
    return fan.fan_id
