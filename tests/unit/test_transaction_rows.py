"""Reading an earnings export: its columns under the names exports give them, times with and
without a zone, amounts as the fan import reads money, kinds in any spelling; and the Fan
recording each transaction once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.csv_import.headers import MissingColumns
from adapters.csv_import.transactions import (
    TransactionRowBuilder,
    map_transaction_columns,
    parse_kind,
)
from application.imports import RowError
from application.transaction_import import TransactionRow, transaction_key
from domain.errors import InvalidValue
from domain.fan import Fan

HEADER = ["Date", "Username", "Amount", "Type", "Transaction ID"]


def read(cells: list[str], header: list[str] = HEADER, *, day_first: bool = False) -> object:
    builder = TransactionRowBuilder(map_transaction_columns(header), day_first=day_first)
    return builder.build(2, cells)


def test_a_row_gives_its_time_fan_amount_kind_and_transaction_id() -> None:
    row = read(["2024-03-18T14:05:09Z", "@ann", "$1,234.56", "Tip", "tx-1"])
    assert row == TransactionRow(
        row=2,
        occurred_at=datetime(2024, 3, 18, 14, 5, 9, tzinfo=UTC),
        amount_cents=123456,
        kind="tip",
        handle="@ann",
        transaction_id="tx-1",
    )


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2024-03-18 14:05", datetime(2024, 3, 18, 14, 5, tzinfo=UTC)),
        ("2024-03-18T16:05:00+02:00", datetime(2024, 3, 18, 14, 5, tzinfo=UTC)),
        ("2024-03-18", datetime(2024, 3, 18, tzinfo=UTC)),
        ("03/18/2024 2:05 PM", datetime(2024, 3, 18, 14, 5, tzinfo=UTC)),
        ("Mar 18, 2024 14:05:09", datetime(2024, 3, 18, 14, 5, 9, tzinfo=UTC)),
        ("18.03.2024 00:30", datetime(2024, 3, 18, 0, 30, tzinfo=UTC)),
    ],
)
def test_times_are_read_in_the_fan_imports_date_spellings_and_naive_ones_are_utc(
    cell: str, expected: datetime
) -> None:
    row = read([cell, "ann", "5", "tip", ""])
    assert isinstance(row, TransactionRow)
    assert row.occurred_at == expected


def test_a_date_column_and_a_time_column_make_one_moment() -> None:
    row = read(
        ["18/03/2024", "ann", "5,00", "tip", "14:05"], ["Date", "Fan", "Gross", "Kind", "Time"]
    )
    assert isinstance(row, TransactionRow)
    assert (row.occurred_at, row.amount_cents) == (datetime(2024, 3, 18, 14, 5, tzinfo=UTC), 500)


@pytest.mark.parametrize(
    ("cell", "kind"),
    [
        ("Subscription", "subscription"),
        ("RECURRING SUBSCRIPTION", "renewal"),
        ("rebill", "renewal"),
        ("tips", "tip"),
        ("Paid message", "ppv"),
        ("PPV", "ppv"),
        ("pay-per-view", "ppv"),
        ("Post purchase", "post"),
    ],
)
def test_kinds_are_read_in_any_case_and_common_spelling(cell: str, kind: str) -> None:
    assert parse_kind(cell) == (kind, None)


def test_an_onlyfans_description_gives_the_kind_and_names_the_fan() -> None:
    header = ["Date", "Amount", "Fee", "Net", "Description"]
    row = read(
        ["2024-03-18 14:05", "$10.00", "$2.00", "$8.00", "Payment for message from @bob"], header
    )
    assert isinstance(row, TransactionRow)
    assert (row.kind, row.handle, row.amount_cents) == ("ppv", "bob", 1000)
    assert map_transaction_columns(header).ignored == ("Fee", "Net")


@pytest.mark.parametrize(
    ("cells", "error"),
    [
        (["yesterday", "ann", "5", "tip", ""], "occurredAt: is not a date"),
        (["2024-03-18 25:00", "ann", "5", "tip", ""], "occurredAt: is not a time"),
        (["2024-03-18", "ann", "five", "tip", ""], "amount: is not an amount of money"),
        (["2024-03-18", "ann", "5", "refund", ""], "kind: is not a kind of transaction"),
        (["2024-03-18", "ann", "5", "", ""], "kind: is missing"),
    ],
)
def test_a_cell_that_cannot_be_read_is_the_rows_error(cells: list[str], error: str) -> None:
    row = read(cells)
    assert isinstance(row, RowError)
    assert row.error.startswith(error)


def test_a_file_without_a_date_amount_or_kind_column_is_refused() -> None:
    with pytest.raises(MissingColumns) as refused:
        map_transaction_columns(["Username", "Amount"])
    assert refused.value.missing == ["occurredAt", "kind"]


def test_platform_id_and_currency_decorated_amount_columns_are_recognised() -> None:
    columns = map_transaction_columns(["Created At", "Fan ID", "Amount (USD)", "Category", "ID"])
    assert columns.columns == {
        "occurred_at": 0,
        "platform_id": 1,
        "amount": 2,
        "kind": 3,
        "transaction_id": 4,
    }


def row(**overrides: object) -> TransactionRow:
    fields: dict[str, object] = {
        "row": 2,
        "occurred_at": datetime(2024, 3, 18, 14, 5, tzinfo=UTC),
        "amount_cents": 500,
        "kind": "tip",
        "handle": "ann",
    }
    return TransactionRow(**(fields | overrides))  # type: ignore[arg-type]


def test_identical_rows_are_told_apart_by_their_order_and_a_file_gives_the_same_keys_again() -> (
    None
):
    first = Counter[bytes]()
    keys = [transaction_key(row(), 7, first) for _ in range(2)]
    again = Counter[bytes]()
    assert keys[0] != keys[1]
    assert [transaction_key(row(), 7, again) for _ in range(2)] == keys


def test_a_transaction_id_is_the_key_whatever_the_other_cells() -> None:
    counts = Counter[bytes]()
    key = transaction_key(row(transaction_id="tx-9"), 7, counts)
    assert key == transaction_key(row(transaction_id=" tx-9", amount_cents=1), 8, counts)
    assert key != transaction_key(row(transaction_id="tx-10"), 7, counts)
    assert "tx-9" not in key


def fan() -> Fan:
    made = Fan.register(
        fan_id=1, tenant="t", platform="onlyfans", platform_id=None, name=None, handle="ann"
    )
    made.collect_events()
    return made


def test_a_fan_records_a_transaction_once_and_its_value_grows_by_the_amount() -> None:
    ann = fan()
    when = datetime(2023, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=2)))
    assert ann.import_transaction(
        amount_cents=250, kind="tip", occurred_at=when, transaction_key="k"
    )
    assert not ann.import_transaction(
        amount_cents=250, kind="tip", occurred_at=when, transaction_key="k"
    )
    (recorded,) = ann.collect_events()
    assert isinstance(recorded, Fan.TransactionImported)
    assert (recorded.occurred_at, recorded.amount_cents, ann.value_cents) == (when, 250, 250)
    assert recorded.timestamp > when


def test_a_transaction_without_a_zone_or_amount_is_refused() -> None:
    with pytest.raises(InvalidValue):
        fan().import_transaction(
            amount_cents=5, kind="tip", occurred_at=datetime(2024, 1, 1), transaction_key="k"
        )
    with pytest.raises(InvalidValue):
        fan().import_transaction(
            amount_cents=0,
            kind="tip",
            occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
            transaction_key="k",
        )
