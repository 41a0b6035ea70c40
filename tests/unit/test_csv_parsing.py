"""The CSV reading pipeline without I/O: encodings, delimiters, rows, headers, cells."""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
from collections.abc import AsyncIterator
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.csv_import import records
from adapters.csv_import.decoding import NotText, StreamDecoder, sniff_encoding
from adapters.csv_import.headers import MissingColumns, map_columns, normalise_header
from adapters.csv_import.reader import CsvUpload, EmptyFile
from adapters.csv_import.records import RowSplitter, RowTooLong, sniff_delimiter
from adapters.csv_import.values import BadCell, RowBuilder, build_row, parse_money
from application.imports import FanRow, Row, RowError


async def _chunks(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in [*sizes, len(data)]:
        if start >= len(data):
            return
        yield data[start : start + max(size, 1)]
        start += max(size, 1)


def read(data: bytes, sizes: list[int] | None = None) -> list[Row]:
    async def run() -> list[Row]:
        upload = CsvUpload(_chunks(data, sizes or [len(data)]))
        await upload.read_header()
        return [row async for row in upload.rows()]

    return asyncio.run(run())


# --- encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "encoding", "skip"),
    [
        (codecs.BOM_UTF8 + b"handle", "utf-8", 3),
        (codecs.BOM_UTF16_LE + "handle".encode("utf-16-le"), "utf-16-le", 2),
        (codecs.BOM_UTF16_BE + "handle".encode("utf-16-be"), "utf-16-be", 2),
        ("handle,name\n".encode("utf-16-le"), "utf-16-le", 0),
        ("handle,name\n".encode("utf-16-be"), "utf-16-be", 0),
        ("handle,né\n".encode(), "utf-8", 0),
        ("handle,né\n".encode("cp1252"), "cp1252", 0),
    ],
)
def test_the_encoding_is_recognised_from_the_first_bytes(
    head: bytes, encoding: str, skip: int
) -> None:
    assert sniff_encoding(head) == (encoding, skip)


@pytest.mark.parametrize("data", [bytes(range(256)) * 20, b"PK\x03\x04" + bytes(4000)])
def test_binary_bytes_are_not_text(data: bytes) -> None:
    with pytest.raises(NotText):
        StreamDecoder().feed(data, final=True)


def test_an_empty_file_has_no_header() -> None:
    with pytest.raises(EmptyFile):
        read(b"")


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    sizes=st.lists(st.integers(min_value=1, max_value=40), max_size=30),
)
def test_any_chunking_of_any_encoding_reads_the_same_rows(encoding: str, sizes: list[int]) -> None:
    text = 'Username;Name;Notes\r\nann;Ann Lée;"two\r\nlines; and ""quotes"""\r\n\r\nbob;Bob;\r\n'
    rows = read(text.encode(encoding), sizes)
    assert rows == [
        FanRow(row=2, handle="ann", name="Ann Lée", notes='two\nlines; and "quotes"'),
        FanRow(row=4, handle="bob", name="Bob"),
    ]


# --- rows ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("handle,name", ","),
        ("handle;name;email", ";"),
        ("handle\tname", "\t"),
        ("handle|name", "|"),
        ('"a,b";c;d', ";"),
        ("handle", ","),
    ],
)
def test_the_delimiter_is_the_one_that_splits_the_header(line: str, delimiter: str) -> None:
    assert sniff_delimiter(line) == delimiter


def test_row_numbers_are_what_a_spreadsheet_shows() -> None:
    splitter = RowSplitter()
    text = '\nhandle,notes\nann,"a\nb\nc"\n\nbob,x\n'
    assert list(splitter.feed(text, final=True)) == [
        (2, ["handle", "notes"]),
        (3, ["ann", "a\nb\nc"]),
        (5, ["bob", "x"]),
    ]


def test_old_mac_line_endings_are_read() -> None:
    assert list(RowSplitter().feed("handle\rann\rbob\r", final=True)) == [
        (1, ["handle"]),
        (2, ["ann"]),
        (3, ["bob"]),
    ]


def test_a_quote_never_closed_ends_with_the_file() -> None:
    rows = list(RowSplitter().feed('handle,notes\nann,"open\nbob,x\n', final=True))
    assert rows[0] == (1, ["handle", "notes"])
    assert rows[1][0] == 2
    assert len(rows) == 2


def test_a_quote_inside_an_unquoted_cell_is_literal_and_swallows_no_row() -> None:
    text = 'handle,notes\nann,6" tall\nbob,x\ncid,"two\nlines"\ndan,"a" b "c\neve,y\n'
    assert list(RowSplitter().feed(text, final=True)) == [
        (1, ["handle", "notes"]),
        (2, ["ann", '6" tall']),
        (3, ["bob", "x"]),
        (4, ["cid", "two\nlines"]),
        (5, ["dan", 'a b "c']),  # a quoted cell that goes on after its closing quote
        (6, ["eve", "y"]),
    ]
    assert read(b'handle,notes\nann,6" tall\nbob,x\n') == [
        FanRow(row=2, handle="ann", notes='6" tall'),
        FanRow(row=3, handle="bob", notes="x"),
    ]


_TOKENS = ["a", "b", " ", ",", '"', '""', "\n", "\r\n"]


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join),
    sizes=st.lists(st.integers(min_value=1, max_value=12), max_size=8),
)
def test_rows_and_their_numbers_are_what_csv_reader_reads(body: str, sizes: list[int]) -> None:
    text = "h,h\n" + body
    # csv.reader gives a blank line as [], so a record's place is its spreadsheet row. Lines
    # lose their CR here: a CRLF inside a quoted cell is read as LF.
    want = [
        (row, [cell.replace("\r\n", "\n") for cell in cells])
        for row, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
        if any(cell.strip() for cell in cells)
    ]
    splitter, got, start = RowSplitter(), [], 0
    for size in sizes:
        got += splitter.feed(text[start : start + size])
        start += size
    got += splitter.feed(text[start:], final=True)
    assert [(row, cells) for row, cells in got if cells and any(c.strip() for c in cells)] == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", '"', '""', "x", ";"]), min_size=1).map("".join))
def test_the_fallback_for_huge_cells_decides_like_csv_reader(line: str) -> None:
    # csv refuses a cell over its field limit; then a regular expression decides whether the
    # line ends inside quotes, and must decide as csv.reader does.
    rows = list(csv.reader(io.StringIO(line + "\nz\n", newline=""), delimiter=";"))
    goes_on = len(rows) == 1 or rows[0] == [] or any("\n" in cell for cell in rows[0])
    assert (records._ends_in_quotes(";")(line) is not None) == goes_on


def test_a_cell_over_csvs_field_limit_fails_its_row_and_keeps_the_rows_after_it() -> None:
    huge = "x" * (csv.field_size_limit() + 10)
    text = f'handle,notes\nann,"{huge}\n{huge}"\nbob,x\ncid,"{huge}"\ndan,y\n'
    assert list(RowSplitter().feed(text, final=True))[1:] == [
        (2, None),
        (3, ["bob", "x"]),
        (4, None),
        (5, ["dan", "y"]),
    ]


def test_a_line_longer_than_the_limit_is_refused_before_it_fills_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records, "MAX_ROW_CHARS", 100)
    splitter = RowSplitter()
    assert list(splitter.feed("handle\nann\n")) == [(1, ["handle"]), (2, ["ann"])]
    fed = 0

    def a_file_without_another_line_break() -> None:
        nonlocal fed
        while fed < 10_000:
            list(splitter.feed("x" * 30))
            fed += 30

    with pytest.raises(RowTooLong, match="row 3 is longer than 100 characters"):
        a_file_without_another_line_break()
    assert fed <= 120


def test_a_line_over_the_limit_in_one_piece_is_refused_after_the_rows_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records, "MAX_ROW_CHARS", 100)
    rows = RowSplitter().feed("handle\nann\n\n" + "x" * 101 + "\nbob\n", final=True)
    assert next(rows) == (1, ["handle"])
    assert next(rows) == (2, ["ann"])
    with pytest.raises(RowTooLong, match="row 4 is longer than 100 characters"):
        next(rows)


def test_a_quote_that_never_closes_is_refused_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records, "MAX_ROW_CHARS", 100)
    splitter = RowSplitter()
    with pytest.raises(RowTooLong, match="row 2"):
        list(splitter.feed('handle,notes\nann,"open\n' + "more\n" * 30))


# --- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Username", "handle"),
        ("  HANDLE ", "handle"),
        ("Display Name", "name"),
        ("E-mail", "email"),
        ("Émail", "email"),
        ("Total Spent", "value"),
        ("Lifetime value", "value"),
        ("valueCents", "value_cents"),
        ("Subscribed at", "subscribed_at"),
        ("Date joined", "subscribed_at"),
        ("User ID", "platform_id"),
        ("\ufeffusername", "handle"),
        ("Total Spent (USD)", "value"),
        ("Lifetime Value ($)", "value"),
        ("Total spent [EUR]", "value"),
        ("Revenue in EUR", "value"),
        ("Total (lifetime) (USD)", "value"),
        ("Value cents (USD)", "value_cents"),
        ("Email (primary)", "email"),
        ("Joined date", "subscribed_at"),
        ("Subscription start", "subscribed_at"),
        ("Subscribed since", "subscribed_at"),
        ("Fan since", "subscribed_at"),
    ],
)
def test_headers_match_without_case_accents_or_punctuation(header: str, field: str) -> None:
    assert field in map_columns([header, "user id"]).columns
    assert normalise_header("Émail-Address") == "emailaddress"


def test_a_header_without_a_handle_or_platform_id_names_what_is_missing() -> None:
    with pytest.raises(MissingColumns) as raised:
        map_columns(["Name", "Email"])
    assert raised.value.missing == ["handle", "platformId"]
    assert raised.value.found == ["Name", "Email"]


def test_brackets_and_currencies_are_dropped_only_when_the_name_is_no_alias() -> None:
    columns = map_columns(["handle", "(USD)", "Favourite ($)", "value cents", "value (cents)"])
    assert columns.columns == {"handle": 0, "value_cents": 3}
    assert columns.ignored == ("(USD)", "Favourite ($)")


def test_unknown_columns_are_ignored_and_the_first_of_two_names_wins() -> None:
    columns = map_columns(["handle", "favourite colour", "username"])
    assert columns.columns == {"handle": 0}
    assert columns.ignored == ("favourite colour",)


# --- cells -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("$1,234.56", 123456),
        ("1234,56", 123456),
        ("1.234,56", 123456),
        ("1 234,56 €", 123456),
        ("1\u00a0234,5", 123450),
        ("USD 12", 1200),
        ("1,234", 123400),
        ("1.234", 123400),  # three digits after one mark: European thousands, not mills
        ("1.5", 150),
        ("0", 0),
        ("-5", -500),
        ("-$5", -500),
        ("+5", 500),
        ("(12.00)", -1200),
        ("(USD 12)", -1200),
        ("0.12", 12),
        ("1'234.50", 123450),
        ("1,234,567.89", 123456789),
    ],
)
def test_money_is_read_in_every_common_spelling(text: str, cents: int) -> None:
    assert parse_money(text) == cents


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "is not an amount of money"),
        ("1.2.3,4.5", "is not an amount of money"),
        ("12.345.6", "is not an amount of money"),
        ("$", "is not an amount of money"),
        ("()", "is not an amount of money"),
        # No thousands group follows a leading 0: the mark is a decimal one.
        ("0.125", "has more than two decimals"),
        ("0,125", "has more than two decimals"),
        ("0,125.50", "is not an amount of money"),
        ("0.125.000", "is not an amount of money"),
        # Only a leading '-' or the whole amount in parentheses is negative.
        ("5-", "is not an amount of money"),
        ("(5", "is not an amount of money"),
        ("5)", "is not an amount of money"),
        ("(-5)", "is not an amount of money"),
        ("--5", "is not an amount of money"),
    ],
)
def test_money_that_cannot_be_read_is_a_bad_cell(text: str, reason: str) -> None:
    with pytest.raises(BadCell) as raised:
        parse_money(text)
    assert str(raised.value) == f"value: {reason}"
    assert raised.value.cell == text


@given(st.integers(min_value=0, max_value=10**11))
def test_money_written_by_us_or_european_spreadsheets_reads_back(cents: int) -> None:
    whole, part = divmod(cents, 100)
    us = f"${whole:,}.{part:02d}"
    eu = f"{whole:,}".replace(",", ".") + f",{part:02d}"
    assert parse_money(us) == cents
    assert parse_money(eu) == cents


def test_a_row_gives_only_its_non_blank_cells() -> None:
    columns = map_columns(["handle", "email", "tags", "total spent"])
    assert build_row(7, ["ann", " ", "vip; Big spender|x", ""], columns) == FanRow(
        row=7, handle="ann", tags=("vip", "Big spender", "x")
    )
    assert build_row(8, ["ann", "", "", "lots"], columns) == RowError(
        8, "value: is not an amount of money"
    )


def test_an_error_names_the_field_and_keeps_at_most_60_characters_of_its_cell_aside() -> None:
    builder = RowBuilder(map_columns(["handle", "Total Spent", "Joined"]))
    long = "much " * 40
    assert builder.build(2, ["ann", long, ""]) == RowError(
        2, "value: is too long to be an amount of money"
    )
    assert builder.build(3, ["ann", "", "x" * 61]) == RowError(3, "subscribedAt: is not a date")
    assert builder.build(4, ["ann", "", "y" * 60]) == RowError(4, "subscribedAt: is not a date")
    assert builder.rejected == {
        2: ("Total Spent", f"{long.strip()[:59]}…"),
        3: ("Joined", f"{'x' * 59}…"),
        4: ("Joined", "y" * 60),
    }


def test_a_money_cell_of_5000_digits_is_a_row_error() -> None:
    columns = map_columns(["handle", "total spent"])
    for cell in ("9" * 5_000, "9" * 4_997 + ".99", "$" + "9" * 5_000):
        assert build_row(2, ["ann", cell], columns) == RowError(
            2, "value: is too long to be an amount of money"
        )


def test_bytes_that_do_not_decode_in_a_utf8_file_fail_only_their_row() -> None:
    head = b"handle,notes\n" + b"".join(b"fan%d,ok\n" % i for i in range(600))
    body = "l\u00e9a,caf\u00e9\n".encode() + b"bad,\xff\xfe caf\xe9\nlast,fine\n"
    rows = read(head + body, [1000])
    assert rows[-3] == FanRow(row=602, handle="l\u00e9a", notes="caf\u00e9")
    assert rows[-2] == RowError(603, "the row holds bytes that are not text in the file's encoding")
    assert rows[-1] == FanRow(row=604, handle="last", notes="fine")


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=3000), max_size=8))
def test_an_ascii_start_then_windows_1252_is_read_as_windows_1252(sizes: list[int]) -> None:
    """Excel's "CSV" of a list whose first accented name comes after the first 4 KB."""
    head = "handle,notes\n" + "".join(f"fan{i},ok\n" for i in range(600))
    text = head + "jos\u00e9,caf\u00e9 cr\u00e8me \u20ac5\nlast,fine\n"
    rows = read(text.encode("cp1252"), sizes)
    assert rows[-2] == FanRow(row=602, handle="jos\u00e9", notes="caf\u00e9 cr\u00e8me \u20ac5")
    assert rows[-1] == FanRow(row=603, handle="last", notes="fine")
    assert len(rows) == 602


def test_a_field_without_a_column_is_blank_whatever_the_columns_after_the_mapped_ones() -> None:
    """An ignored column, or a cell beyond the header, after the last mapped column is
    nobody's platform, platform id, name or notes."""
    rows = read(b"Username,Email,Favourite colour\nann,ann@example.com,red,extra\nbob\n")
    assert rows == [
        FanRow(row=2, handle="ann", email="ann@example.com"),
        FanRow(row=3, handle="bob"),
    ]


# Each field a spreadsheet may hold: a header naming it, a cell, and what the FanRow keeps.
_FIELDS = {
    "handle": ("Username", "ann_1", "ann_1"),
    "platform_id": ("User ID", "4242", "4242"),
    "platform": ("Platform", "Fansly", "fansly"),
    "name": ("Display Name", "Ann Lée", "Ann Lée"),
    "email": ("E-mail", "ann@example.com", "ann@example.com"),
    "value_cents": ("Total Spent (USD)", "$1,234.56", 123456),
    "tags": ("Tags", "vip; new", ("vip", "new")),
    "notes": ("Notes", "likes cats", "likes cats"),
}


@settings(max_examples=200, deadline=None)
@given(
    present=st.lists(st.sampled_from(sorted(_FIELDS)), unique=True),
    ignored=st.lists(st.sampled_from(["Favourite", "Colour", "Misc", "Z"]), unique=True),
    order=st.randoms(use_true_random=False),
    extra_cells=st.integers(min_value=0, max_value=2),
)
def test_any_columns_in_any_order_give_exactly_their_fields(
    present: list[str], ignored: list[str], order: object, extra_cells: int
) -> None:
    """Whichever fields a file has, in whatever order, among whatever ignored columns, with
    extra cells past the header: each field comes from its column, every other is blank."""
    columns = [("handle", _FIELDS["handle"])] if "handle" not in present else []
    columns += [(field, _FIELDS[field]) for field in present]
    columns += [(None, (name, f"{name.lower()} cell", None)) for name in ignored]
    order.shuffle(columns)  # type: ignore[attr-defined]
    header = [spec[0] for _, spec in columns]
    cells = [spec[1] for _, spec in columns] + ["beyond"] * extra_cells

    row = build_row(2, cells, map_columns(header))

    assert row == FanRow(row=2, **{field: spec[2] for field, spec in columns if field})


def subscribed(data: bytes) -> list[object]:
    return [row.subscribed_at if isinstance(row, FanRow) else row.error for row in read(data)]


def test_slash_dates_of_a_file_are_all_read_one_way_and_never_swapped_silently() -> None:
    us = b"handle,joined\na,03/04/2024\nb,12/31/2023\nc,18/03/2024\n"
    assert subscribed(us) == [
        date(2024, 3, 4),
        date(2023, 12, 31),
        "subscribedAt: is not a date written month/day/year like this file's",
    ]
    # A ';' file comes from a spreadsheet that writes the day first.
    assert subscribed(b"handle;joined\na;03/04/2024\nb;18/03/2024\n") == [
        date(2024, 4, 3),
        date(2024, 3, 18),
    ]
    # The first date that can only be read one way decides, whatever the separator.
    assert subscribed(b"handle,joined\na,18/03/2024\nb,03/04/2024\nc,2024-01-02\n") == [
        date(2024, 3, 18),
        date(2024, 4, 3),
        date(2024, 1, 2),
    ]
