"""Patreon's and Fansly's exports in the CSV import, Patreon's signatures and JSON:API."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from adapters.csv_import.headers import map_columns
from adapters.csv_import.values import build_row
from adapters.patreon.jsonapi import decode_member, decode_page
from adapters.patreon.signing import sign, verify
from application.imports import FanRow
from application.patreon import PatreonMember, member_row

# The columns of Patreon's members export (Creator page > Audience > Export CSV).
PATREON_HEADER = [
    "Name", "Email", "Discord", "Patron Status", "Follows You", "Free Member", "Free Trial",
    "Lifetime Amount", "Pledge Amount", "Charge Frequency", "Tier", "Addressee", "Street",
    "City", "State", "Zip", "Country", "Phone", "Patronage Since Date", "Last Charge Date",
    "Last Charge Status", "Additional Details", "User ID", "Last Updated", "Currency",
]  # fmt: skip


def test_patreons_members_export_is_read_as_patreon_fans() -> None:
    columns = map_columns(PATREON_HEADER)
    assert columns.platform == "patreon"
    assert columns.columns == {
        "name": 0,
        "email": 1,
        "value": 7,
        "tags": 10,
        "subscribed_at": 18,
        "platform_id": 22,
    }
    cells = ["Ann Lee", "ann@example.com", "", "Active patron", "Yes", "No", "No", "125.00",
             "5.00", "monthly", "Gold", "", "", "", "", "", "", "", "2021-03-04 10:11:12",
             "2024-01-01 00:00:00", "Paid", "", "4242", "2024-01-02", "USD"]  # fmt: skip
    row = build_row(2, cells, columns)
    assert isinstance(row, FanRow)
    assert (row.platform, row.platform_id, row.name) == ("patreon", "4242", "Ann Lee")
    assert (row.value_cents, row.tags, row.subscribed_at) == (12500, ("Gold",), date(2021, 3, 4))


def test_a_platform_cell_still_decides_for_its_row() -> None:
    columns = map_columns(["User ID", "Patron Status", "Lifetime Amount", "Platform"])
    row = build_row(2, ["7", "Active patron", "1.00", "onlyfans"], columns)
    assert isinstance(row, FanRow)
    assert row.platform == "onlyfans"


@pytest.mark.parametrize(
    ("header", "platform"),
    [
        (["Fansly ID", "Username", "Display Name", "Subscribed Since", "Total Spent"], "fansly"),
        (["Fansly Username", "Total Spent"], "fansly"),
        (["Username", "Display Name", "Subscribed Since", "Total Spent"], None),
        (["User ID", "Patron Status"], None),  # one Patreon column alone says nothing
    ],
)
def test_a_file_is_a_platforms_only_when_its_columns_name_it(
    header: list[str], platform: str | None
) -> None:
    assert map_columns(header).platform == platform


def test_fanslys_usual_columns_are_aliases() -> None:
    columns = map_columns(
        ["Fansly ID", "Username", "Display Name", "Subscribed Since", "Total Spent"]
    )
    assert columns.columns == {
        "platform_id": 0,
        "handle": 1,
        "name": 2,
        "subscribed_at": 3,
        "value": 4,
    }


def test_a_patreon_signature_is_the_hex_hmac_md5_of_the_raw_body() -> None:
    # RFC 2202's first HMAC-MD5 test case, key and data as Patreon would pass them.
    assert sign("\x0b" * 16, b"Hi There") == "9294727a3638bb1c13f48ef8158bfc9d"
    assert verify("secret", b"{}", sign("secret", b"{}"))
    assert verify("secret", b"{}", sign("secret", b"{}").upper())
    assert not verify("secret", b"{} ", sign("secret", b"{}"))
    assert not verify("other", b"{}", sign("secret", b"{}"))
    assert not verify("secret", b"{}", None)
    assert not verify("secret", b"{}", "")


PAGE = b"""{
  "data": [{"id": "m-1", "type": "member",
            "attributes": {"full_name": "Ann", "email": "ann@example.com",
                           "patron_status": "active_patron", "lifetime_support_cents": 1500,
                           "currently_entitled_amount_cents": 500,
                           "pledge_relationship_start": "2022-01-15T15:00:00.000+00:00",
                           "some_new_field": 1},
            "relationships": {"currently_entitled_tiers": {"data": [{"id": "t1", "type": "tier"}]},
                              "user": {"data": {"id": "42", "type": "user"}}}}],
  "included": [{"id": "t1", "type": "tier", "attributes": {"title": "Gold Tier!"}},
               {"id": "42", "type": "user", "attributes": {"full_name": "Ann"}}],
  "links": {"next": "https://www.patreon.com/api/oauth2/v2/campaigns/1/members?page%5Bcursor%5D=abc"},
  "meta": {"pagination": {"cursors": {"next": "abc"}, "total": 2}}
}"""


def test_a_members_page_gives_members_with_their_tiers_user_and_next_cursor() -> None:
    page = decode_page(PAGE)
    assert page.next_cursor == "abc"
    assert page.members == [
        PatreonMember(
            member_id="m-1",
            user_id="42",
            full_name="Ann",
            email="ann@example.com",
            patron_status="active_patron",
            tiers=("Gold Tier!",),
            lifetime_support_cents=1500,
            currently_entitled_amount_cents=500,
            pledge_relationship_start=date(2022, 1, 15),
        )
    ]


def test_the_last_page_has_no_next_cursor_and_a_wrong_shape_is_refused() -> None:
    assert decode_page(b'{"data": [], "meta": {"pagination": {"cursors": {"next": null}}}}') == (
        decode_page(b'{"data": []}')
    )
    assert decode_page(b'{"data": []}').next_cursor is None
    with pytest.raises(msgspec.DecodeError):
        decode_page(b'{"data": [{"id": 5, "type": "member"}]}')
    with pytest.raises(msgspec.DecodeError):
        decode_member(b'{"data": {"id": "1", "type": "campaign"}}')


def test_a_member_becomes_a_fan_row_named_by_its_user_id() -> None:
    member = decode_page(PAGE).members[0]
    row = member_row(member, 9)
    assert (row.row, row.platform, row.platform_id) == (9, "patreon", "42")
    assert row.tags == ("gold tier", "active_patron")
    assert row.value_cents == 1500
    webhook_row = member_row(member, 2, with_value=False, status="former_patron")
    assert webhook_row.value_cents is None
    assert webhook_row.tags == ("gold tier", "former_patron")
    nameless = member_row(PatreonMember(member_id="m-9"), 2)
    assert (nameless.platform_id, nameless.name) == ("m-9", "Patreon member m-9")
