"""Patreon members as fans: what API v2 says of a member, and the fan row it becomes.

A member's fan is named by the Patreon *user* id (``relationships.user``), not the member id:
the user id is what Patreon's members CSV export calls "User ID", so a spreadsheet import and
an API sync find the same fan; the member id (one per campaign) stands in only when a member
document carries no user. Tier titles and the patron status become tags, the campaign's
lifetime support becomes the fan's value (Patreon's own total, so a re-sync sets it rather
than adds to it), and the pledge relationship's start the day the fan subscribed.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Protocol

import msgspec

from application.imports import FanRow
from domain.fan import MAX_TAG_LENGTH, MAX_VALUE_CENTS

PLATFORM = "patreon"
_NOT_TAG = re.compile(r"[^\w \-]+")


class PatreonMember(msgspec.Struct, frozen=True, kw_only=True):
    member_id: str
    user_id: str | None = None
    full_name: str | None = None
    email: str | None = None
    patron_status: str | None = None  # active_patron, declined_patron, former_patron, None
    tiers: tuple[str, ...] = ()
    lifetime_support_cents: int | None = None
    currently_entitled_amount_cents: int | None = None
    pledge_relationship_start: date | None = None

    @property
    def platform_id(self) -> str:
        return self.user_id or self.member_id


class MembersPage(msgspec.Struct, frozen=True):
    members: list[PatreonMember]
    next_cursor: str | None


class PatreonApi(Protocol):
    async def members_page(self, cursor: str | None) -> MembersPage:
        """One page of the campaign's members; raises PlatformCallFailed."""
        ...


class PlatformCallFailed(Exception):
    """A call to a platform that did not answer what was asked (auth, limits, outage)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def member_row(
    member: PatreonMember,
    row: int,
    *,
    with_value: bool = True,
    status: str | None = None,
) -> FanRow:
    """The fan row of ``member``. ``with_value``: set the fan's value to the lifetime support
    (a sync; a webhook adds its pledge as revenue instead). ``status`` overrides the member's
    patron status (a pledge deleted: the member is a former patron from now on)."""
    name = (member.full_name or "").strip() or None
    tags = [_tag(title) for title in member.tiers]
    patron_status = status or member.patron_status
    if patron_status:
        tags.append(_tag(patron_status))
    value = member.lifetime_support_cents if with_value else None
    return FanRow(
        row=row,
        platform=PLATFORM,
        platform_id=member.platform_id,
        # A fan needs a name or a handle: a member who never gave a name is still a fan.
        name=name or f"Patreon member {member.platform_id}",
        email=member.email or None,
        value_cents=None if value is None else max(0, min(value, MAX_VALUE_CENTS)),
        tags=tuple(tag for tag in tags if tag),
        subscribed_at=member.pledge_relationship_start,
    )


def _tag(text: str) -> str:
    """A tier title as a tag: Patreon allows any characters, tags only a few."""
    cleaned = " ".join(_NOT_TAG.sub(" ", text).split()).lower()
    return cleaned[:MAX_TAG_LENGTH].strip()
