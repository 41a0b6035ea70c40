"""Fan commands and their handlers: read the stream, let the Fan decide, append."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from application.context import CommandContext
from application.errors import ConcurrencyError
from application.ports import EventStore, IdAllocator
from application.streams import load, retry_on_conflict, save
from domain.fan import Fan, fan_stream_id

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
    position = await save(store, fan, STREAM_TYPE, ctx)
    assert position is not None
    return FanChanged(fan, position)


async def update_fan(cmd: UpdateFan, ctx: CommandContext, *, store: EventStore) -> FanChanged:
    async def attempt() -> FanChanged:
        fan, position = await _load_expected(store, cmd.fan_id, ctx, cmd.expected_version)
        fan.update(**cmd.changes)
        return FanChanged(fan, await save(store, fan, STREAM_TYPE, ctx) or position)

    return await retry_on_conflict(attempt, retry=cmd.expected_version is None)


async def delete_fan(cmd: DeleteFan, ctx: CommandContext, *, store: EventStore) -> FanChanged:
    async def attempt() -> FanChanged:
        fan, _ = await _load_expected(store, cmd.fan_id, ctx, cmd.expected_version)
        fan.delete()
        position = await save(store, fan, STREAM_TYPE, ctx)
        assert position is not None
        return FanChanged(fan, position)

    return await retry_on_conflict(attempt, retry=cmd.expected_version is None)


async def erase_fan(cmd: EraseFan, ctx: CommandContext, *, store: EventStore) -> FanChanged:
    """Right to erasure: the fan's personal data becomes unreadable everywhere, for good."""

    async def attempt() -> FanChanged:
        fan, _ = await load(store, fan_stream_id(cmd.fan_id), tenant=ctx.tenant)
        fan.erase()
        position = await save(store, fan, STREAM_TYPE, ctx)
        assert position is not None
        return FanChanged(fan, position)

    return await retry_on_conflict(attempt, retry=True)


async def _load_expected(
    store: EventStore, fan_id: int, ctx: CommandContext, expected_version: int | None
) -> tuple[Fan, int]:
    fan, position = await load(store, fan_stream_id(fan_id), tenant=ctx.tenant)
    if expected_version is not None and fan.version != expected_version:
        raise ConcurrencyError(f"fan {fan_id} is at version {fan.version}, not {expected_version}")
    return fan, position
