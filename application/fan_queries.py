"""Queries on the fans read model, and the port that answers them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, Protocol

import msgspec

FanSort = Literal["-createdAt", "createdAt", "-valueCents", "valueCents"]


class FanView(msgspec.Struct, frozen=True, kw_only=True):
    fan_id: int
    tenant: str
    platform: str
    platform_id: str | None
    name: str | None
    handle: str | None
    email: str | None
    value_cents: int
    tags: tuple[str, ...]
    notes: str | None
    subscribed_at: date | None
    created_at: datetime
    updated_at: datetime
    version: int


class ListFans(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    limit: int = 50
    cursor: str | None = None
    tag: str | None = None
    search: str | None = None
    sort: FanSort = "-createdAt"


class FanPage(msgspec.Struct, frozen=True):
    fans: list[FanView]
    next_cursor: str | None


class FanReadModel(Protocol):
    async def list_fans(self, query: ListFans) -> FanPage: ...

    async def get_fan(self, tenant: str, fan_id: int) -> FanView | None: ...
