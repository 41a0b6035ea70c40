"""The boundary's two rules on raw JSON: how deep it nests, and whether its text holds NUL."""

from __future__ import annotations

import pytest
from litestar.exceptions import ValidationException

from adapters.http.boundary import MAX_JSON_DEPTH, check_json_depth, contains_nul


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_at_the_limit_passes_and_one_level_more_is_refused() -> None:
    check_json_depth(nested(MAX_JSON_DEPTH))
    with pytest.raises(ValidationException):
        check_json_depth(nested(MAX_JSON_DEPTH + 1))
    with pytest.raises(ValidationException):
        check_json_depth(b'{"a":' * 1_000)  # never closed: refused all the same


def test_brackets_inside_strings_and_wide_shallow_json_are_not_depth() -> None:
    check_json_depth(b'{"a": "' + b"[" * 1_000 + b'\\" [[["}')
    check_json_depth(b"[" + b"[1]," * 10_000 + b"[]]")


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (rb'{"a": "x\u0000"}', True),
        (rb'{"a": "\\\u0000"}', True),
        (rb'{"a": "\\u0000"}', False),  # an escaped backslash, then the text u0000
        (rb'{"a": "\\\\u0000"}', False),
        (rb'{"a": "x"}', False),
    ],
)
def test_a_nul_is_told_from_an_escaped_backslash(raw: bytes, found: bool) -> None:
    assert contains_nul(raw) is found
