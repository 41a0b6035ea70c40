"""What a projection is: a name, the tables it owns, and how one event changes them."""

from __future__ import annotations

from typing import Protocol

from application.ports import RecordedEvent, Sql


class Projection(Protocol):
    name: str
    # Tables this projection writes; nobody else writes them. A rebuild clones these.
    tables: tuple[str, ...]

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None: ...
