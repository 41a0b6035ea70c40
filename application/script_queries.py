"""Queries on the scripts read model: what they answer and in what shape."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec


class ScriptMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """What the messages sent from a script did: accepted by the platform, bought (PPV)."""

    sent: int = 0
    purchased: int = 0
    revenue_cents: int = 0


class ScriptView(msgspec.Struct, frozen=True, kw_only=True):
    script_id: int
    name: str
    content: str
    price_cents: int
    media_urls: list[str]
    created_at: datetime
    updated_at: datetime
    version: int
    metrics: ScriptMetrics
    shared: bool = False


class ScriptPage(msgspec.Struct, frozen=True):
    scripts: list[ScriptView]
    next_cursor: str | None


class ScriptReadModel(Protocol):
    async def list_scripts(self, tenant: str, limit: int, cursor: str | None) -> ScriptPage: ...

    async def get_script(self, tenant: str, script_id: int) -> ScriptView | None: ...

    async def sensitive_words(self, tenant: str) -> list[str]: ...
