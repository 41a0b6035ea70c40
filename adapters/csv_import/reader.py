"""An uploaded CSV as a stream of rows: bytes in, ``FanRow``/``RowError`` out, with the file's
size and SHA-256 kept as it goes. Nothing holds more than one chunk and one row at a time."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from adapters.csv_import.decoding import StreamDecoder
from adapters.csv_import.headers import ColumnMap, map_columns
from adapters.csv_import.records import RowSplitter
from adapters.csv_import.values import RowBuilder
from application.imports import RowError


class EmptyFile(Exception):
    pass


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the {limit}-byte limit")
        self.limit = limit


class CsvUpload:
    """``columns_of`` and ``builder_of``: how the header and the rows are read; a fan list's
    by default, an earnings export's for the transactions import (csv_import.transactions)."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int | None = None,
        columns_of: Callable[[list[str]], Any] = map_columns,
        builder_of: Callable[..., Any] = RowBuilder,
    ) -> None:
        self._chunks = chunks
        self._columns_of = columns_of
        self._builder_of = builder_of
        self._max = max_bytes
        self._decoder = StreamDecoder()
        self._splitter = RowSplitter()
        self._sha256 = hashlib.sha256()
        self._records = self._read()
        self.size = 0
        # A ColumnMap, or what ``columns_of`` gives.
        self.columns: ColumnMap | Any = None
        # Row -> (column name, cell) of the cells that could not be read: for this upload's
        # answer only, never recorded (see values.BadCell).
        self.rejected: dict[int, tuple[str, str]] = {}

    @property
    def checksum(self) -> str:
        return self._sha256.hexdigest()

    async def read_header(self) -> Any:
        """The columns, from the first non-blank row (NotText, MissingColumns, EmptyFile)."""
        async for _, cells in self._records:
            self.columns = self._columns_of(cells or [])
            return self.columns
        raise EmptyFile("the file is empty: it has no header row")

    async def rows(self) -> AsyncIterator[Any]:
        assert self.columns is not None, "read the header first"
        # Day-first dates go with ';' (see values.SlashDates).
        builder = self._builder_of(self.columns, day_first=self._splitter.delimiter == ";")
        builder.rejected = self.rejected
        decoder = self._decoder
        async for row, cells in self._records:
            builder.check_undecodable = decoder.replaced
            if cells is None:
                yield RowError(row, "the row cannot be read as CSV (a cell is too long)")
            elif "".join(cells).strip():  # a row of empty (or blank) cells is a blank row
                yield builder.build(row, cells)

    async def read_to_end(self) -> None:
        """Hash and count the rest of the file without reading it as CSV (a retried import
        that a finished job answers)."""
        async for chunk in self._chunks:
            self._count(chunk)

    async def _read(self) -> AsyncIterator[tuple[int, list[str] | None]]:
        async for chunk in self._chunks:
            self._count(chunk)
            for record in self._splitter.feed(self._decoder.feed(chunk)):
                yield record
        for record in self._splitter.feed(self._decoder.feed(b"", final=True), final=True):
            yield record

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._max is not None and self.size > self._max:
            raise TooLarge(self._max)
        self._sha256.update(chunk)
