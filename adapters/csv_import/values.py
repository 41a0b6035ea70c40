"""Cells to fan fields: money in any common spelling, tags, dates, blank cells.

A blank cell means "not in this file": an import never clears a value a fan already has.
Values are only parsed here; every rule of what a fan may hold stays in domain/fan.py.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from adapters.csv_import.headers import ColumnMap
from application.imports import FanRow, RowError

_CURRENCY = re.compile(r"(?i)\s|\u00a0|\u202f|[$€£¥]|usd|eur|gbp|cad|aud")
# '1234.56' or '$1,234.56' (a thousands group never starts with 0: '0,125.00' is not money).
_COMMON_MONEY = re.compile(r"\$?([1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)\.([0-9]{2})")
_TAG_SPLIT = re.compile(r"[,;|\n]")
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%b %d, %Y", "%d %b %Y")
_SLASH_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
# A rejected cell shown back to the uploader is cut to this many characters.
QUOTED_CELL_CHARS = 60
# No amount of money a fan spent is written with more characters than this ('$1,234,567.89'
# has 13): a longer cell is refused before any digit is converted.
MAX_MONEY_CHARS = 40
# The rejected cells an upload keeps to show in its answer (a job records its first 1,000
# errors too).
MAX_REJECTED_CELLS = 1_000


class BadCell(ValueError):
    """A cell that cannot be read. The message names the field and the reason, never the
    cell: it is recorded with the job (in the log and the jobs table), and a cell may hold a
    fan's name or email in the wrong column, which must not outlive the fan's erasure."""

    def __init__(self, field: str, message: str, cell: str) -> None:
        super().__init__(f"{field}: {message}")
        self.cell = cell


def quote_cell(text: str) -> str:
    """A cell as an answer shows it: stripped, at most ~60 characters."""
    text = text.strip()
    if len(text) > QUOTED_CELL_CHARS:
        text = text[: QUOTED_CELL_CHARS - 1] + "…"
    return text


def parse_money(text: str) -> int:
    """Cents from '$1,234.56', '1234,56', '1.234,56', '1 234,56 €', '(12.00)', '-5'.

    Negative is a leading '-' or the whole amount in parentheses; a trailing '-' or a lone
    parenthesis is not an amount. With both '.' and ',' the last one is the decimal mark.
    With one mark followed by exactly three digits the mark is a thousands separator:
    '1.234' and '1,234' are both 123400 cents, because money has cents, not mills, and
    European spreadsheets write one thousand two hundred and thirty-four as '1.234' (a US
    '1.234' would be a price with three decimals, which no fan ever spent). A thousands group
    never follows a leading 0, so '0.125' has three decimals, and is refused.
    """
    if len(text) > MAX_MONEY_CHARS:
        raise BadCell("value", "is too long to be an amount of money", text)
    common = _COMMON_MONEY.fullmatch(text)
    if common:  # most files: '1234.56' or '$1,234.56', read without the general rules
        return int(common[1].replace(",", "")) * 100 + int(common[2])
    raw = _CURRENCY.sub("", text)
    negative = False
    if raw.startswith("(") and raw.endswith(")"):
        negative, raw = True, raw[1:-1]
    elif raw.startswith("-"):
        negative, raw = True, raw[1:]
    elif raw.startswith("+"):
        raw = raw[1:]
    digits = raw
    if not digits or not re.fullmatch(r"[0-9.,']+", digits):
        raise BadCell("value", "is not an amount of money", text)
    last_dot, last_comma = digits.rfind("."), digits.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_mark = "." if last_dot > last_comma else ","
    elif last_dot >= 0 or last_comma >= 0:
        mark = "." if last_dot >= 0 else ","
        # One mark followed by exactly three digits is a thousands separator (see above),
        # unless what comes before it is 0. Several marks are thousands separators too.
        after = len(digits) - max(last_dot, last_comma) - 1
        thousands = after == 3 and not digits.startswith("0")
        decimal_mark = "" if digits.count(mark) > 1 or thousands else mark
    else:
        decimal_mark = ""
    whole, cents = digits.rsplit(decimal_mark, 1) if decimal_mark else (digits, "")
    groups = re.split(r"[.,']", whole)
    if len(groups) > 1 and (
        not 1 <= len(groups[0]) <= 3
        or groups[0].startswith("0")
        or any(len(group) != 3 for group in groups[1:])
    ):
        raise BadCell("value", "is not an amount of money", text)
    whole = "".join(groups)
    if len(cents) > 2:
        raise BadCell("value", "has more than two decimals", text)
    if not (whole + cents).isdigit():
        raise BadCell("value", "is not an amount of money", text)
    amount = int(whole or "0") * 100 + int(cents.ljust(2, "0"))
    return -amount if negative else amount


def parse_cents(text: str) -> int:
    raw = text.strip()
    if not re.fullmatch(r"-?[0-9]{1,18}", raw):
        raise BadCell("valueCents", "is not a whole number of cents", raw)
    return int(raw)


def parse_tags(text: str) -> tuple[str, ...]:
    return tuple(tag for tag in (part.strip() for part in _TAG_SPLIT.split(text)) if tag)


def parse_date(text: str) -> date:
    """A day in ISO 8601 ('2024-03-18'; a timestamp keeps its day) or another unambiguous
    spelling: '18.03.2024' (day first), 'Mar 18, 2024', '18 Mar 2024'. Dates with slashes
    follow a file's own convention: see ``SlashDates``."""
    raw = text.strip()
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise BadCell("subscribedAt", "is not a date", raw)


class SlashDates:
    """Dates like 03/04/2024 in one file, all read the same way: month first (US exports)
    or day first (most of the world).

    The file's first such date decides: by itself when one of its numbers is over 12,
    else by the file's convention: a ';'-separated file comes from a spreadsheet set up for
    a country that writes 1,5 for 1.5, and those write the day first. A later date that
    cannot be read that way is an error, never a silent swap of day and month."""

    def __init__(self, *, day_first: bool) -> None:
        self._hint = day_first
        self.day_first: bool | None = None

    def parse(self, text: str) -> date:
        match = _SLASH_DATE.fullmatch(text.strip())
        if match is None:
            return parse_date(text)
        first, second, year = (int(part) for part in match.groups())
        if self.day_first is None:
            if first > 12 >= second:
                self.day_first = True
            elif second > 12 >= first:
                self.day_first = False
            else:
                self.day_first = self._hint
        day, month = (first, second) if self.day_first else (second, first)
        try:
            return date(year, month, day)
        except ValueError:
            order = "day/month/year" if self.day_first else "month/day/year"
            raise BadCell(
                "subscribedAt", f"is not a date written {order} like this file's", text
            ) from None


class RowBuilder:
    """Cells to a FanRow for one file's columns (looked up once, not per row)."""

    def __init__(self, columns: ColumnMap, *, day_first: bool = False) -> None:
        at = columns.columns.get
        # Column index of each text field, in FanRow's order. A field without a column reads
        # the blank cell ``build`` adds after the row's own (index -1): not a cell past the
        # last mapped column, which may be an ignored column's, or an extra one's.
        self._width = max(columns.columns.values(), default=-1) + 1
        self._text = tuple(
            -1 if at(name) is None else at(name)
            for name in ("platform", "platform_id", "handle", "name", "email", "notes")
        )
        self._value, self._cents = at("value"), at("value_cents")
        self._tags, self._subscribed = at("tags"), at("subscribed_at")
        self._dates = SlashDates(day_first=day_first)
        self._names = columns.names
        self._platform = columns.platform
        # Row -> (column name, cell) of cells that could not be read, for the uploader's
        # answer only (see BadCell).
        self.rejected: dict[int, tuple[str, str]] = {}
        # Set by the reader once the decoder has met bytes it could not decode.
        self.check_undecodable = False

    def build(self, row: int, cells: list[str]) -> FanRow | RowError:
        """One spreadsheet row as the fields it gives, or why it cannot be read."""
        if self.check_undecodable and any("\ufffd" in cell for cell in cells):
            return RowError(row, "the row holds bytes that are not text in the file's encoding")
        missing = self._width - len(cells)
        cells = cells + [""] * (missing + 1) if missing > 0 else [*cells, ""]
        platform, platform_id, handle, name, email, notes = [
            cells[index].strip() or None for index in self._text
        ]
        column = ""
        try:
            value_cents = None
            if (cell := _cell(cells, self._cents)) is not None:
                column = "value_cents"
                value_cents = parse_cents(cell)
            elif (cell := _cell(cells, self._value)) is not None:
                column = "value"
                value_cents = parse_money(cell)
            subscribed_at = None
            if (cell := _cell(cells, self._subscribed)) is not None:
                column = "subscribed_at"
                subscribed_at = self._dates.parse(cell)
        except BadCell as error:
            if len(self.rejected) < MAX_REJECTED_CELLS:
                self.rejected[row] = (self._names.get(column, column), quote_cell(error.cell))
            return RowError(row, str(error))
        tags = _cell(cells, self._tags)
        return FanRow(
            row=row,
            platform=platform.lower() if platform else self._platform,
            platform_id=platform_id,
            handle=handle,
            name=name,
            email=email,
            value_cents=value_cents,
            tags=parse_tags(tags) if tags is not None else None,
            notes=notes,
            subscribed_at=subscribed_at,
        )


def _cell(cells: list[str], index: int | None) -> str | None:
    if index is None or index >= len(cells):
        return None
    return cells[index].strip() or None


def build_row(row: int, cells: list[str], columns: ColumnMap) -> FanRow | RowError:
    builder = RowBuilder(columns)
    builder.check_undecodable = True
    return builder.build(row, cells)
