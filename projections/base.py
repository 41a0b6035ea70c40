"""What a projection is: a name, the tables it owns, and how one event changes them.

A projection may also apply a whole batch at once (``apply_batch``): the runner prefers it.
Most do it by folding the batch in memory over the rows it touches (``TableRows``): one query
loads those rows, the events change them in Python in log order, one statement writes them
back. A statement per event costs a round trip and a plan execution each; replaying a long log
that way runs at a few thousand events per second. Such projections apply one event as a
batch of one: a single implementation, and the batched and one-by-one results agree.

Projections pick their events from a batch by exact class (``type(r.event) in HANDLED``):
every event read from the log is an instance of its class in ``domain.events.EVENT_TYPES``,
and a set lookup costs a fraction of an ``isinstance`` on eventsourcing's event classes, on
each of the millions of events of a replay, once per projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from application.ports import RecordedEvent, Sql


class Projection(Protocol):
    name: str
    # Tables this projection writes; nobody else writes them. A rebuild clones these.
    tables: tuple[str, ...]

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None: ...


async def apply_batch(projection: Projection, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
    """Apply ``batch`` in log order: all at once if the projection can, else event by event."""
    whole = getattr(projection, "apply_batch", None)
    if whole is not None:
        await whole(sql, batch)
        return
    for recorded in batch:
        await projection.apply(sql, recorded)


Row = dict[str, Any]


class TableRows:
    """The rows of one table that a batch touches: loaded once, changed in memory, written
    back once. ``get`` returns the current row (None if absent); change it in place, or
    ``put`` / ``remove`` it. ``flush`` upserts every row seen present and deletes those that
    were stored and are gone. Columns not listed (generated ones, others' additions) are left
    to the table: their defaults on insert, untouched on update.

    The key is one column, or several (``key`` and ``key_type`` as tuples, the table's
    primary key in order): rows are then named by tuples of their values."""

    def __init__(
        self,
        table: str,
        key: str | tuple[str, ...],
        key_type: str | tuple[str, ...],
        columns: Sequence[str],
    ) -> None:
        self.table = table
        self.keys = (key,) if isinstance(key, str) else key
        self.key_types = (key_type,) if isinstance(key_type, str) else key_type
        self.composite = not isinstance(key, str)
        self.columns = tuple(columns)
        self._rows: dict[Any, Row | None] = {}
        self._stored: set[Any] = set()

    async def load(self, sql: Sql, keys: Iterable[Any]) -> None:
        wanted = [key for key in set(keys) if key not in self._rows]
        if not wanted:
            return
        for key in wanted:
            self._rows[key] = None
        columns = ", ".join(f"t.{c}" for c in self.columns)
        relation, where, args = self._selecting(wanted)
        joined = f", {relation}" if relation else ""
        rows = await sql.fetch(f"SELECT {columns} FROM {self.table} AS t{joined} {where}", *args)
        for row in rows:
            stored = dict(row)
            key = self._key_of(stored)
            self._rows[key] = stored
            self._stored.add(key)

    def get(self, key: Any) -> Row | None:
        return self._rows.get(key)

    def put(self, key: Any, row: Row) -> None:
        for column, value in zip(self.keys, key if self.composite else (key,), strict=True):
            row[column] = value
        self._rows[key] = row

    def remove(self, key: Any) -> None:
        self._rows[key] = None

    def present(self) -> Iterable[Row]:
        return (row for row in self._rows.values() if row is not None)

    async def flush(self, sql: Sql) -> None:
        gone = [key for key in self._stored if self._rows.get(key) is None]
        if gone:
            relation, where, args = self._selecting(gone)
            using = f" USING {relation}" if relation else ""
            await sql.execute(f"DELETE FROM {self.table} AS t{using} {where}", *args)
        rows = list(self.present())
        if rows:
            columns = ", ".join(self.columns)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.keys)
            # One statement for the batch: the rows travel as one JSON array and come back
            # typed as the table's own row type (resolved, like the table, on search_path).
            # json, not jsonb: Postgres parses it once, straight into the rows, where jsonb
            # is first built as a tree (figures: bench/MEASUREMENTS.md, "Projection rows").
            await sql.execute(
                f"INSERT INTO {self.table} ({columns})"
                f" SELECT {columns} FROM json_populate_recordset(NULL::{self.table}, $1::json)"
                f" ON CONFLICT ({', '.join(self.keys)}) DO UPDATE SET {updates}",
                rows,
            )
        self._rows.clear()
        self._stored.clear()

    def _selecting(self, keys: list[Any]) -> tuple[str, str, list[Any]]:
        """What names ``keys``: a relation of them to join (composite keys only), the WHERE
        clause, and the arguments (one array per key column)."""
        if not self.composite:
            return "", f"WHERE t.{self.keys[0]} = ANY($1::{self.key_types[0]}[])", [keys]
        arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(self.key_types, 1))
        names = ", ".join(f"k{n}" for n in range(len(self.keys)))
        match = " AND ".join(f"t.{c} = k.k{n}" for n, c in enumerate(self.keys))
        columns = [list(parts) for parts in zip(*keys, strict=True)]
        return f"unnest({arrays}) AS k({names})", f"WHERE {match}", columns

    def _key_of(self, row: Row) -> Any:
        # uuid keys come back as UUID objects; callers name rows by their text form.
        parts = []
        for column, key_type in zip(self.keys, self.key_types, strict=True):
            value = str(row[column]) if key_type == "uuid" else row[column]
            row[column] = value
            parts.append(value)
        return tuple(parts) if self.composite else parts[0]
