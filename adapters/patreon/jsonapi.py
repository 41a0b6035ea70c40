"""Patreon API v2's JSON:API documents, decoded with msgspec into application's members.

A members page is ``{"data": [member...], "included": [tier | user ...], "links": {"next"},
"meta": {"pagination": {"cursors": {"next"}, "total"}}}``; a webhook's body is one member
document, ``{"data": member, "included": [...]}``. A member names its tiers and user in
``relationships``, their attributes are in ``included``. Unknown fields are ignored (Patreon
adds some), wrong types refused (DecodeError), so a malformed body is a 400, never a crash.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from application.patreon import MembersPage, PatreonMember

MEMBER_FIELDS = (
    "full_name,email,patron_status,pledge_relationship_start,lifetime_support_cents,"
    "currently_entitled_amount_cents,last_charge_date,last_charge_status,"
    "will_pay_amount_cents"
)


class _Ref(msgspec.Struct):
    id: str
    type: str


class _One(msgspec.Struct):
    data: _Ref | None = None


class _Many(msgspec.Struct):
    data: list[_Ref] = []


class _Relationships(msgspec.Struct):
    currently_entitled_tiers: _Many = msgspec.field(default_factory=_Many)
    user: _One = msgspec.field(default_factory=_One)


class _MemberAttributes(msgspec.Struct):
    full_name: str | None = None
    email: str | None = None
    patron_status: str | None = None
    pledge_relationship_start: datetime | None = None
    lifetime_support_cents: int | None = None
    currently_entitled_amount_cents: int | None = None


class _Member(msgspec.Struct):
    id: str
    type: str
    attributes: _MemberAttributes = msgspec.field(default_factory=_MemberAttributes)
    relationships: _Relationships = msgspec.field(default_factory=_Relationships)


class _IncludedAttributes(msgspec.Struct):
    title: str | None = None


class _Included(msgspec.Struct):
    id: str
    type: str
    attributes: _IncludedAttributes = msgspec.field(default_factory=_IncludedAttributes)


class _Cursors(msgspec.Struct):
    next: str | None = None


class _Pagination(msgspec.Struct):
    cursors: _Cursors = msgspec.field(default_factory=_Cursors)
    total: int | None = None


class _Meta(msgspec.Struct):
    pagination: _Pagination = msgspec.field(default_factory=_Pagination)


class _Page(msgspec.Struct):
    data: list[_Member]
    included: list[_Included] = []
    meta: _Meta = msgspec.field(default_factory=_Meta)


class _Document(msgspec.Struct):
    data: _Member
    included: list[_Included] = []


def decode_page(raw: bytes) -> MembersPage:
    page = msgspec.json.decode(raw, type=_Page)
    titles = _titles(page.included)
    return MembersPage(
        [_member(one, titles) for one in page.data if one.type == "member"],
        page.meta.pagination.cursors.next or None,
    )


def decode_member(raw: bytes) -> PatreonMember:
    document = msgspec.json.decode(raw, type=_Document)
    if document.data.type != "member":
        raise msgspec.ValidationError(f"expected a member, got a {document.data.type}")
    return _member(document.data, _titles(document.included))


def _titles(included: list[_Included]) -> dict[str, str]:
    return {one.id: one.attributes.title or "" for one in included if one.type == "tier"}


def _member(one: _Member, titles: dict[str, str]) -> PatreonMember:
    attributes, links = one.attributes, one.relationships
    start = attributes.pledge_relationship_start
    return PatreonMember(
        member_id=one.id,
        user_id=links.user.data.id if links.user.data is not None else None,
        full_name=attributes.full_name,
        email=attributes.email,
        patron_status=attributes.patron_status,
        tiers=tuple(
            titles[tier.id] for tier in links.currently_entitled_tiers.data if titles.get(tier.id)
        ),
        lifetime_support_cents=attributes.lifetime_support_cents,
        currently_entitled_amount_cents=attributes.currently_entitled_amount_cents,
        pledge_relationship_start=_day(start),
    )


def _day(moment: datetime | None) -> date | None:
    return None if moment is None else moment.date()
