"""The HTTP contract's bodies (camelCase on the wire), separate from commands and events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec
from litestar.exceptions import ValidationException
from litestar.openapi.spec import OpenAPIType
from msgspec import UNSET, UnsetType

from adapters.http.boundary import check_json_depth
from adapters.http.openapi import NOT_BLANK, rule, schema
from application.fan_queries import FanView
from domain import fan as rules
from domain.fan import Fan


class Body(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Request bodies: unknown fields are an error, not silently dropped."""


B = TypeVar("B", bound=Body)

# An integer the database can hold (bigint): a larger one is a 400 at decoding, never a
# failure of the statement it would reach.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


def decode_strictly(raw: bytes, body_type: type[B]) -> B:
    """Decode a request body exactly as the contract says.

    litestar converts bodies leniently ("5" or 5.0 become 5 cents); the contract refuses a
    value of the wrong type with 400, so the body litestar already parsed (and documents in
    OpenAPI) is decoded once more, strictly.
    """
    check_json_depth(raw)
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.DecodeError as error:
        raise ValidationException(str(error)) from None


# The domain's rules on a fan's fields (domain/fan.py), as the OpenAPI schema states them.
# Text is trimmed first: blank is the same as null. A fan needs a name or a handle.
NO_NUL = r"^[^\u0000]*$"
Text = Annotated[str, rule("Text without NUL characters", pattern=NO_NUL)]
Name = Annotated[str, rule("Trimmed; no NUL characters", max_length=rules.MAX_NAME, pattern=NO_NUL)]
Handle = Annotated[
    str,
    rule(
        "1-64 letters, digits, '_', '.' or '-', optionally after '@'",
        pattern=r"^@?[A-Za-z0-9_.\-]{1,64}$",
    ),
]
Email = Annotated[
    str,
    rule(
        "An email address",
        max_length=254,
        # Printable ASCII only: a subset of what the domain takes, with no whitespace doubt.
        pattern=r"^[!-?A-~]+@[!-\-/-?A-~]+(\.[!-\-/-?A-~]+)+$",
    ),
]
ValueCents = Annotated[
    int, rule("Lifetime value, in cents", minimum=0, maximum=rules.MAX_VALUE_CENTS)
]
Tag = Annotated[
    str,
    rule(
        "Letters, digits, '_', ' ' or '-', starting with a letter, digit or '_'; kept"
        " lower-cased with its spaces collapsed",
        max_length=rules.MAX_TAG_LENGTH,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ \-]*$",
    ),
]
TAG_RULE = {"max_length": rules.MAX_TAG_LENGTH, "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_ \-]*$"}
Tags = Annotated[
    list[Tag],
    rule(
        f"At most {rules.MAX_TAGS} tags, duplicates dropped",
        max_items=rules.MAX_TAGS,
        # litestar documents the items of list[Tag] without Tag's rule: stated here.
        items=schema(
            type=OpenAPIType.STRING,
            max_length=rules.MAX_TAG_LENGTH,
            pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ \-]*$",
        ),
    ),
]
Notes = Annotated[str, rule("No NUL characters", max_length=rules.MAX_NOTES, pattern=NO_NUL)]
Platform = Annotated[str, rule("The fan's platform", enum=sorted(rules.PLATFORMS))]


class CreateFanBody(Body):
    """A fan: a ``name`` or a ``handle`` (or both) is required."""

    openapi_rules: ClassVar[dict[str, Any]] = {
        "any_of": [
            {
                "required": ["name"],
                "properties": {"name": {"type": "string", "pattern": NOT_BLANK}},
            },
            {"required": ["handle"], "properties": {"handle": {"type": "string"}}},
        ]
    }

    name: Name | None = None
    platform: Platform = "onlyfans"
    platform_id: Text | None = None
    handle: Handle | None = None
    email: Email | None = None
    value_cents: ValueCents = 0
    tags: Tags = []
    notes: Notes | None = None
    subscribed_at: date | None = None


class UpdateFanBody(Body):
    """The fields to change; null clears one. The fan keeps a name or a handle."""

    name: Name | UnsetType | None = UNSET
    handle: Handle | UnsetType | None = UNSET
    email: Email | UnsetType | None = UNSET
    value_cents: ValueCents | UnsetType = UNSET
    tags: Tags | UnsetType | None = UNSET
    notes: Notes | UnsetType | None = UNSET
    subscribed_at: date | UnsetType | None = UNSET

    def changes(self) -> dict[str, Any]:
        return {
            field: value
            for field in self.__struct_fields__
            if (value := getattr(self, field)) is not UNSET
        }


class FanOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    user_id: str
    platform: str
    platform_id: str | None
    name: str | None
    handle: str | None
    email: str | None
    value_cents: int
    tags: list[str]
    notes: str | None
    subscribed_at: date | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def from_view(cls, view: FanView) -> FanOut:
        return cls(
            id=view.fan_id,
            user_id=view.tenant,
            platform=view.platform,
            platform_id=view.platform_id,
            name=view.name,
            handle=view.handle,
            email=view.email,
            value_cents=view.value_cents,
            tags=list(view.tags),
            notes=view.notes,
            subscribed_at=view.subscribed_at,
            created_at=view.created_at,
            updated_at=view.updated_at,
            version=view.version,
        )

    @classmethod
    def from_aggregate(cls, fan: Fan) -> FanOut:
        return cls(
            id=fan.fan_id,
            user_id=fan.tenant,
            platform=fan.platform,
            platform_id=fan.platform_id,
            name=fan.name,
            handle=fan.handle,
            email=fan.email,
            value_cents=fan.value_cents,
            tags=list(fan.tags),
            notes=fan.notes,
            subscribed_at=fan.subscribed_at,
            created_at=fan.created_on,
            updated_at=fan.modified_on,
            version=fan.version,
        )


class FanEnvelope(msgspec.Struct, kw_only=True, rename="camel"):
    fan: FanOut


class FanChangedOut(msgspec.Struct, kw_only=True, rename="camel"):
    """A command's answer: the new state, and the log position to read your own write at."""

    fan: FanOut
    position: int


class FanDeletedOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: int
    deleted: bool
    erased: bool
    position: int


class FanListOut(msgspec.Struct, kw_only=True, rename="camel"):
    fans: list[FanOut]
    next_cursor: str | None
