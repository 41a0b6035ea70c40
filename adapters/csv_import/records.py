"""Text to spreadsheet rows: delimiter sniffing and quoted fields spanning lines.

Lines are grouped into rows the way ``csv.reader`` (default dialect) reads them, without a
per-character loop in Python. A quote opens a quoted field only as the first character of a
field (at the start of the line or right after a delimiter); anywhere else it is literal
(``6" tall``), so counting quotes cannot tell whether a row goes on. A line continues on the
next one only when it ends inside a quoted field, which the csv reader that reads the line
tells (``_OneRow.ended_in_quotes``); lines without a quote are whole rows and never go through
``csv`` at all. Row numbers are what a spreadsheet shows: the header is row 1, and a row with
line breaks inside a cell is still one row. Blank lines keep their number (a spreadsheet shows
them as empty rows) but yield nothing. No row, and no line, may be longer than MAX_ROW_CHARS:
memory stays bounded whatever the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator

DELIMITERS = (",", ";", "\t", "|")
# Longest row, in characters: a runaway quote would otherwise swallow the rest of the file
# into one row, and a file without line breaks would be held whole in memory.
MAX_ROW_CHARS = 1_000_000


class RowTooLong(Exception):
    pass


def sniff_delimiter(header_line: str) -> str:
    """The candidate that splits the header line into the most columns (outside quotes)."""
    unquoted = header_line.split('"')[0::2]
    counts = {d: sum(part.count(d) for part in unquoted) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _ends_in_quotes(delimiter: str) -> Callable[[str], re.Match[str] | None]:
    """A matcher that matches a line exactly when ``csv.reader`` ends it inside a quoted
    field: fields (quoted: ``"..."`` with ``""`` inside, then anything up to the delimiter,
    as csv reads ``"ab"cd``; unquoted: not starting with a quote, any quotes in it literal),
    each followed by the delimiter, then a quoted field that is still open at the end.
    Every repetition is possessive, so a line is scanned once."""
    d = re.escape(delimiter)
    quoted = r'"(?:[^"]++|"")*+'
    field = rf'(?:{quoted}"[^{d}]*+|[^"{d}][^{d}]*+)?'
    return re.compile(rf"(?:{field}{d})*+{quoted}\Z").match


class RowSplitter:
    """Feed text as it arrives; take back (row number, cells) for every complete row."""

    def __init__(self) -> None:
        self._partial = ""  # text after the last line break
        self._pending: list[str] = []  # lines of a row still inside quotes
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
        too_long = False
        if len(text) > MAX_ROW_CHARS:  # rare: only then look for a line over the limit
            for index, line in enumerate(lines):
                if len(line) > MAX_ROW_CHARS:
                    del lines[index:]
                    too_long = True
                    break
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            delimiter = self.delimiter
            if self._pending or delimiter is None:
                yield from self._line(line)
                continue
            # The common line, as ``_line`` reads it: a whole row, or a blank one.
            if '"' not in line:
                row = self._next_row
                self._next_row = row + 1
                if line.strip():
                    yield row, line.split(delimiter)
                continue
            assert self._parse_row is not None
            cells = self._parse_row(line)
            if self._parse_row.ended_in_quotes:
                self._start(line)
                continue
            row = self._next_row
            self._next_row = row + 1
            yield row, cells
        if too_long or len(self._partial) + self._pending_chars > MAX_ROW_CHARS:
            raise RowTooLong(f"row {self._next_row} is longer than {MAX_ROW_CHARS} characters")
        if final and self._pending:
            # An unterminated quote at the end of the file: let csv make what it can of it.
            yield self._emit()

    def _line(self, line: str) -> Iterator[tuple[int, list[str] | None]]:
        if self._pending:
            assert self._parse_row is not None
            self._pending.append(line)
            self._pending_chars += len(line) + 1
            # The line starts inside the quoted field: read it as if it opened one.
            self._parse_row('"' + line)
            if not self._parse_row.ended_in_quotes:
                yield self._emit()
            elif self._pending_chars > MAX_ROW_CHARS:
                raise RowTooLong(f"row {self._next_row} never closes its quotes")
            return
        if self.delimiter is None:
            if not line.strip():
                self._next_row += 1
                return
            self.delimiter = sniff_delimiter(line)
            self._parse_row = _OneRow(self.delimiter)
        assert self._parse_row is not None
        row = self._next_row
        if '"' not in line:
            self._next_row = row + 1
            if line.strip():
                yield row, line.split(self.delimiter)
            return
        cells = self._parse_row(line)
        if self._parse_row.ended_in_quotes:
            self._start(line)
            return
        self._next_row = row + 1
        yield row, cells

    def _start(self, line: str) -> None:
        self._pending = [line]
        self._pending_chars = len(line)

    def _emit(self) -> tuple[int, list[str] | None]:
        lines, self._pending = self._pending, []
        self._pending_chars = 0
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
    reading the row. Each call hands the reader one text, then one empty line, then ends its
    input (the reader starts afresh on every row). The reader asks for the empty line only
    when the text ends inside a quoted field: that is how it tells that the row goes on
    (``ended_in_quotes``); otherwise the row is read exactly as ``_parse`` reads it."""

    def __init__(self, delimiter: str) -> None:
        self._text: str | None = None
        self._more = False
        self._reader = csv.reader(self, delimiter=delimiter)
        self._ends_in_quotes = _ends_in_quotes(delimiter)
        self.ended_in_quotes = False

    def __iter__(self) -> _OneRow:
        return self

    def __next__(self) -> str:
        text = self._text
        if text is not None:
            self._text = None
            return text
        if self._more:
            self._more = False
            return ""
        raise StopIteration

    def __call__(self, text: str) -> list[str] | None:
        self._text = text
        self._more = True
        try:
            cells = next(self._reader, [])
        except csv.Error:  # a cell over csv's field limit: decide without the reader
            self.ended_in_quotes = self._ends_in_quotes(text) is not None
            return None
        finally:
            self._text = None
        self.ended_in_quotes = not self._more
        return cells
