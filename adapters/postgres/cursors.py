"""Opaque keyset cursors: the sort key of the last row of a page, base64url JSON."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from domain.errors import InvalidValue


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def decode_cursor(cursor: str, shape: Any) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=shape)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidValue("cursor", "is not a cursor this API returned") from None
