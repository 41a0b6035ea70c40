"""Text to spreadsheet rows: delimiter sniffing and quoted fields spanning lines.

A row is complete when it holds an even number of quote characters (RFC 4180 doubles every
quote inside a quoted field), so lines are grouped into rows without a per-character loop in
Python; only rows that hold quotes go through ``csv``. Row numbers are what a spreadsheet shows:
the header is row 1, and a row with line breaks inside a cell is still one row. Blank lines
keep their number (a spreadsheet shows them as empty rows) but yield nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

DELIMITERS = (",", ";", "\t", "|")
# A runaway quote would otherwise swallow the rest of the file into one row.
MAX_ROW_CHARS = 1_000_000


class RowTooLong(Exception):
    pass


def sniff_delimiter(header_line: str) -> str:
    """The candidate that splits the header line into the most columns (outside quotes)."""
    unquoted = header_line.split('"')[0::2]
    counts = {d: sum(part.count(d) for part in unquoted) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class RowSplitter:
    """Feed text as it arrives; take back (row number, cells) for every complete row."""

    def __init__(self) -> None:
        self._partial = ""  # text after the last line break
        self._pending: list[str] = []  # lines of a row still inside quotes
        self._pending_quotes = 0
        self._pending_chars = 0
        self._next_row = 1
        self.delimiter: str | None = None
        self._cr_only: bool | None = None
        self._parse_row: _OneRow | None = None

    def feed(self, text: str, *, final: bool = False) -> Iterator[tuple[int, list[str] | None]]:
        if self._cr_only is None and text:
            # Excel for Mac's old "CSV (Macintosh)" ends lines with a lone CR.
            self._cr_only = "\r" in text and "\n" not in text
        if self._cr_only:
            text = text.replace("\r", "\n")
        text = self._partial + text
        lines = text.split("\n")
        self._partial = "" if final else lines.pop()
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            delimiter = self.delimiter
            quotes = line.count('"')
            if self._pending or delimiter is None or quotes % 2:
                yield from self._line(line)
                continue
            # The common line, as ``_line`` reads it: a whole row, or a blank one.
            row = self._next_row
            self._next_row += 1
            if not quotes:
                if line.strip():
                    yield row, line.split(delimiter)
            elif line.strip():
                if self._parse_row is None:
                    self._parse_row = _OneRow(delimiter)
                yield row, self._parse_row(line)
        if final and self._pending:
            # An unterminated quote at the end of the file: let csv make what it can of it.
            yield self._emit()

    def _line(self, line: str) -> Iterator[tuple[int, list[str] | None]]:
        quotes = line.count('"')
        if self._pending:
            self._pending.append(line)
            self._pending_quotes += quotes
            self._pending_chars += len(line)
            if self._pending_quotes % 2 == 0:
                yield self._emit()
            elif self._pending_chars > MAX_ROW_CHARS:
                raise RowTooLong(f"row {self._next_row} never closes its quotes")
            return
        if self.delimiter is None:
            if not line.strip():
                self._next_row += 1
                return
            self.delimiter = sniff_delimiter(line)
        if quotes % 2:
            self._pending = [line]
            self._pending_quotes = quotes
            self._pending_chars = len(line)
            return
        row = self._next_row
        self._next_row += 1
        if not line.strip():
            return
        if quotes:
            if self._parse_row is None:
                self._parse_row = _OneRow(self.delimiter)
            yield row, self._parse_row(line)
        else:
            yield row, line.split(self.delimiter)

    def _emit(self) -> tuple[int, list[str] | None]:
        lines, self._pending = self._pending, []
        row = self._next_row
        self._next_row += 1
        assert self.delimiter is not None
        return row, _parse("\n".join(lines), self.delimiter)


def _parse(text: str, delimiter: str) -> list[str] | None:
    """The cells of one row that holds quotes; None if csv cannot read it (a huge cell)."""
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return None


class _OneRow:
    """One csv reader for every quoted row of a file: making a reader per row costs more than
    reading the row. Each call hands the reader exactly one text, then ends its input, so a
    row is read exactly as ``_parse`` reads it (the reader starts afresh on every row)."""

    def __init__(self, delimiter: str) -> None:
        self._text: str | None = None
        self._reader = csv.reader(self, delimiter=delimiter)

    def __iter__(self) -> _OneRow:
        return self

    def __next__(self) -> str:
        text, self._text = self._text, None
        if text is None:
            raise StopIteration
        return text

    def __call__(self, text: str) -> list[str] | None:
        self._text = text
        try:
            return next(self._reader, [])
        except csv.Error:
            return None
        finally:
            self._text = None
