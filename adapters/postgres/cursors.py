"""Opaque keyset cursors: the sort key of the last row of a page, base64url JSON.

A cursor comes back from the client, so it is checked like any input before it reaches a
statement: integers within bigint, text without NUL, times with a zone that stay in the
calendar once in UTC (asyncpg sends UTC). A cursor that breaks any of these was not one this
API returned.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import msgspec

from domain.errors import InvalidValue

_BIGINT = range(-(2**63), 2**63)


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def decode_cursor(cursor: str, shape: Any) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = msgspec.json.decode(raw, type=shape)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise _not_ours() from None
    if not all(_storable(value) for value in values):
        raise _not_ours()
    return values


def _storable(value: Any) -> bool:
    if isinstance(value, int):
        return value in _BIGINT
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return False
        try:
            value.astimezone(UTC)
        except OverflowError:
            return False
    return True


def _not_ours() -> InvalidValue:
    return InvalidValue("cursor", "is not a cursor this API returned")
