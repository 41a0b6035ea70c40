"""Columns and cells of an earnings or transactions export: when, which fan, how much, what for.

Header names are compared as the fan import compares them (``headers.normalise_header``, with
its currency and bracket decorations). Neither OnlyFans nor Fansly publishes the columns of its
earnings export. OnlyFans' statements page (onlyfans.com/my/statements/earnings) shows Date
(with a time), Amount (gross), Fee, Net and a Description such as "Tip from NAME"; the tools
that export it name the columns after it. So the aliases below are those names and the obvious
ones of agency spreadsheets; Fee and Net are not read: a fan's value is what the fan paid.

Times: ISO 8601 with or without a zone, or any date the fan import reads, optionally followed
by a time ('2024-03-18 14:05', '03/18/2024 2:05 PM', 'Mar 18, 2024 14:05:09'), or a date
column and a time column. A time without a zone is UTC; a date without a time is its midnight,
UTC.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time

import msgspec

from adapters.csv_import import headers
from adapters.csv_import.headers import MissingColumns, aliases_of, normalise_header
from adapters.csv_import.reader import CsvUpload
from adapters.csv_import.values import (
    MAX_REJECTED_CELLS,
    BadCell,
    SlashDates,
    parse_money,
    quote_cell,
)
from application.imports import RowError
from application.transaction_import import TransactionLine, TransactionRow
from domain.fan import PLATFORMS

_ALIASES: dict[str, tuple[str, ...]] = {
    "occurred_at": (
        "date",
        "datetime",
        "date time",
        "date and time",
        "date & time",
        "timestamp",
        "transaction date",
        "transaction time",
        "created at",
        "created",
        "paid at",
        "payment date",
        "occurred at",
        "purchase date",
        "purchased at",
    ),
    "time": ("time", "hour", "heure", "hora"),
    "handle": (*aliases_of("handle"), "fan", "from", "subscriber", "buyer", "customer", "tipper"),
    "platform_id": tuple(alias for alias in aliases_of("platform_id") if alias != "id"),
    "amount": (
        "amount",
        "gross",
        "gross amount",
        "price",
        "earnings",
        "earning",
        "total",
        "sum",
        "paid",
        "value",
        "montant",
    ),
    "kind": (
        "kind",
        "type",
        "transaction type",
        "category",
        "earning type",
        "earnings type",
        "payment type",
        "description",
        "product",
    ),
    "transaction_id": (
        "transaction id",
        "transactionid",
        "transaction",
        "id",
        "payment id",
        "order id",
        "reference",
        "ref",
        "earning id",
    ),
    "platform": ("platform", "plateforme"),
}
ALIASES = {normalise_header(alias): field for field, names in _ALIASES.items() for alias in names}

# Every way of naming a kind, normalised as headers are: the kinds of domain/fan.py.
_KINDS: dict[str, tuple[str, ...]] = {
    "subscription": ("subscription", "sub", "subscribe", "new subscription", "subscription from"),
    "renewal": (
        "renewal",
        "renew",
        "rebill",
        "recurring",
        "recurring subscription",
        "recurring subscription from",
        "resubscription",
        "subscription renewal",
    ),
    "tip": ("tip", "tips", "tip from", "donation", "gift"),
    "ppv": (
        "ppv",
        "pay per view",
        "paid message",
        "message",
        "messages",
        "payment for message",
        "payment for message from",
        "mass message",
        "locked message",
        "chat",
    ),
    "post": (
        "post",
        "post purchase",
        "paid post",
        "posts",
        "payment for post",
        "payment for post from",
        "ppv post",
        "unlock post",
    ),
}
KINDS = {normalise_header(alias): kind for kind, names in _KINDS.items() for alias in names}
# "Tip from @ann", "Payment for message from ann": a description naming the fan after "from".
_FROM = re.compile(r"(?i)^(.*?)\s+(?:from|by)\s+@?(\S+)\s*$")
_TIME = re.compile(
    r"(?i)^(?P<date>.+?)[ T,]+(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})(?::(?P<s>[0-9]{2}))?"
    r"(?:\s*(?P<ampm>am|pm))?$"
)


class TransactionColumns(msgspec.Struct, frozen=True):
    columns: dict[str, int]
    ignored: tuple[str, ...]
    names: dict[str, str] = {}
    platform: str | None = None


def map_transaction_columns(header: list[str]) -> TransactionColumns:
    columns: dict[str, int] = {}
    names: dict[str, str] = {}
    ignored = []
    for index, name in enumerate(header):
        field = headers.field_of(name, ALIASES)
        if field is None or field in columns:
            if name.strip() and field is None:
                ignored.append(name.strip())
            continue
        columns[field] = index
        names[field] = name.strip()
    # A description column ("Tip from @ann") may name the fan: then it is the only fan column.
    fan = "handle" in columns or "platform_id" in columns or "kind" in columns
    missing = [
        name
        for name, present in (
            ("occurredAt", "occurred_at" in columns),
            ("amount", "amount" in columns),
            ("kind", "kind" in columns),
            ("handle", fan),
        )
        if not present
    ]
    if missing:
        raise MissingColumns(missing, [name.strip() for name in header], needs=_NEEDS)
    platform = "fansly" if any(normalise_header(n).startswith("fansly") for n in header) else None
    return TransactionColumns(columns, tuple(ignored), names, platform)


_NEEDS = (
    "a transactions file needs columns for the date, the fan's handle (username) or platform id,"
    " the amount and the kind"
)


def parse_kind(text: str) -> tuple[str, str | None]:
    """(kind, the fan's handle if the cell names one: 'Tip from @ann')."""
    kind = KINDS.get(normalise_header(text))
    if kind is not None:
        return kind, None
    match = _FROM.match(text.strip())
    if match is not None and (kind := KINDS.get(normalise_header(match[1]))) is not None:
        return kind, match[2]
    raise BadCell(
        "kind", "is not a kind of transaction (subscription, renewal, tip, ppv, post)", text
    )


class Times:
    """Cells to aware datetimes: ISO 8601 first, else a date as the fan import reads dates
    (slash dates by the file's convention) followed by an optional time; naive means UTC."""

    def __init__(self, *, day_first: bool) -> None:
        self._dates = SlashDates(day_first=day_first)

    def parse(self, text: str, time_cell: str | None = None) -> datetime:
        raw = text.strip()
        if time_cell:
            raw = f"{raw} {time_cell.strip()}"
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            moment = self._date_and_time(raw)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)

    def _date_and_time(self, raw: str) -> datetime:
        match = _TIME.match(raw)
        clock = time()
        if match is not None:
            hour, minute = int(match["h"]), int(match["m"])
            if match["ampm"]:
                if not 1 <= hour <= 12:
                    raise BadCell("occurredAt", "is not a time", raw)
                hour = hour % 12 + (12 if match["ampm"].lower() == "pm" else 0)
            try:
                clock = time(hour, minute, int(match["s"] or 0))
            except ValueError:
                raise BadCell("occurredAt", "is not a time", raw) from None
            raw = match["date"]
        try:
            day = self._dates.parse(raw)
        except BadCell as error:
            raise BadCell("occurredAt", str(error).split(": ", 1)[1], raw) from None
        return datetime.combine(day, clock)


class TransactionRowBuilder:
    """Cells to a TransactionRow for one file's columns."""

    def __init__(self, columns: TransactionColumns, *, day_first: bool = False) -> None:
        self._at = columns.columns.get
        self._names = columns.names
        self._platform = columns.platform
        self._times = Times(day_first=day_first)
        self.rejected: dict[int, tuple[str, str]] = {}
        self.check_undecodable = False

    def build(self, row: int, cells: list[str]) -> TransactionLine:
        if self.check_undecodable and any("\ufffd" in cell for cell in cells):
            return RowError(row, "the row holds bytes that are not text in the file's encoding")
        cell = _Cells(cells, self._at)
        column = ""
        try:
            column = "occurred_at"
            occurred_at = self._times.parse(cell("occurred_at") or "", cell("time"))
            column = "amount"
            amount_cents = parse_money(cell("amount") or "")
            handle = cell("handle")
            kind_cell = cell("kind")
            column = "kind"
            if kind_cell is None:
                raise BadCell("kind", "is missing", "")
            kind, named = parse_kind(kind_cell)
        except BadCell as error:
            if len(self.rejected) < MAX_REJECTED_CELLS:
                self.rejected[row] = (self._names.get(column, column), quote_cell(error.cell))
            field, _, reason = str(error).partition(": ")
            field = {"value": "amount", "subscribedAt": "occurredAt"}.get(field, field)
            return RowError(row, f"{field}: {reason}")
        platform = cell("platform")
        return TransactionRow(
            row=row,
            occurred_at=occurred_at,
            amount_cents=amount_cents,
            kind=kind,
            platform=_platform(platform) or self._platform,
            platform_id=cell("platform_id"),
            handle=handle or named,
            transaction_id=cell("transaction_id"),
        )


class _Cells:
    """A row's cells by field: None for a blank or absent cell."""

    def __init__(self, cells: list[str], column_of: Callable[[str], int | None]) -> None:
        self._cells = cells
        self._column_of = column_of

    def __call__(self, field: str) -> str | None:
        index = self._column_of(field)
        if index is None or index >= len(self._cells):
            return None
        return self._cells[index].strip() or None


def _platform(text: str | None) -> str | None:
    if text is None:
        return None
    name = text.strip().lower()
    return name if name in PLATFORMS else None


def transactions_upload(chunks: AsyncIterator[bytes], *, max_bytes: int | None = None) -> CsvUpload:
    """A CSV read as an earnings export (HTTP and CLI alike)."""
    return CsvUpload(
        chunks,
        max_bytes=max_bytes,
        columns_of=map_transaction_columns,
        builder_of=TransactionRowBuilder,
    )
