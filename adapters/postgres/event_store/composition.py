"""Statements assembled from named CTE fragments.

A fragment is one ``name AS (...)`` of a ``WITH`` statement; its SQL names its parameters
(``:event_ids``) instead of numbering them, so fragments can be combined in any shape without
anyone counting offsets. ``compose`` numbers the parameters in order of first appearance
(a name two fragments use is one parameter) and remembers each shape it composed: the same
shape always sends the same text, which keeps asyncpg's prepared-statement cache hitting.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# ``:name``, but not the casts ``x::text`` (a colon after a word character or a colon).
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Fragment:
    """``name AS (sql)``; ``sql`` may read the fragments composed before it."""

    name: str
    sql: str


@dataclass(frozen=True)
class Statement:
    sql: str
    # The parameter names in the order of their numbers ($1 first).
    parameters: tuple[str, ...]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """``values`` (by parameter name) in the order the statement numbers them."""
        try:
            return [values[name] for name in self.parameters]
        except KeyError as missing:
            raise KeyError(f"no value for the parameter {missing}") from None


@functools.cache
def compose(fragments: tuple[Fragment, ...], select: str) -> Statement:
    """``WITH`` every fragment, in order, then ``select``."""
    names = [fragment.name for fragment in fragments]
    if len(set(names)) != len(names):
        raise ValueError(f"two fragments share a name: {names}")
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match[1], len(numbers) + 1)}"

    ctes = ",\n".join(
        f"{fragment.name} AS (\n{_PARAMETER.sub(number, _indented(fragment.sql))}\n)"
        for fragment in fragments
    )
    body = _PARAMETER.sub(number, select.strip())
    return Statement(f"WITH {ctes}\n{body}", tuple(numbers))


def _indented(sql: str) -> str:
    return textwrap.indent(textwrap.dedent(sql).strip(), "    ")
