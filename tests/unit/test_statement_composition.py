"""Statements composed from named CTE fragments (adapters/postgres/event_store/composition.py)
and the append shapes built from them (append_sql.py)."""

from __future__ import annotations

import re

import pytest

from adapters.postgres.event_store.append_sql import append_statement, joined
from adapters.postgres.event_store.composition import Fragment, compose

FIRST = Fragment("first", "SELECT :a::int + :b")
SECOND = Fragment("second", "SELECT x::text FROM first WHERE :b = :c")


def test_parameters_are_numbered_in_order_of_first_use_and_a_shared_name_is_one_parameter() -> None:
    statement = compose((FIRST, SECOND), "SELECT * FROM second WHERE :d")

    assert statement.parameters == ("a", "b", "c", "d")
    assert "$1::int + $2" in statement.sql
    assert "x::text FROM first WHERE $2 = $3" in statement.sql
    assert statement.sql.startswith("WITH first AS (")
    assert statement.sql.endswith("SELECT * FROM second WHERE $4")


def test_arguments_follow_the_numbers_whatever_order_the_values_come_in() -> None:
    statement = compose((FIRST, SECOND), "SELECT 1")

    assert statement.arguments({"c": 3, "b": 2, "a": 1, "unused": 9}) == [1, 2, 3]
    with pytest.raises(KeyError, match="'c'"):
        statement.arguments({"a": 1, "b": 2})


def test_a_shape_composed_twice_is_the_same_statement() -> None:
    assert compose((FIRST, SECOND), "SELECT 1") is compose((FIRST, SECOND), "SELECT 1")
    assert append_statement(checked=True, outbox=True) is append_statement(
        checked=True, outbox=True
    )


def test_two_fragments_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="share a name"):
        compose((FIRST, Fragment("first", "SELECT 2")), "SELECT 1")


@pytest.mark.parametrize("checked", [True, False])
@pytest.mark.parametrize("outbox", [True, False])
@pytest.mark.parametrize("guarded", [True, False])
def test_every_append_shape_numbers_its_parameters_without_gaps_and_inserts_events_once(
    checked: bool, outbox: bool, guarded: bool
) -> None:
    guards = (Fragment("held", "SELECT 1 WHERE :holder IS NOT NULL"),) if guarded else ()
    statement = append_statement(checked=checked, outbox=outbox, guards=guards)

    numbers = {int(n) for n in re.findall(r"\$(\d+)", statement.sql)}
    assert numbers == set(range(1, len(statement.parameters) + 1))
    assert statement.sql.count("INSERT INTO events") == 1
    assert ("NOT EXISTS (SELECT 1 FROM moved)" in statement.sql) is checked
    assert ("EXISTS (SELECT 1 FROM held)" in statement.sql) is guarded
    assert ("INSERT INTO outbox" in statement.sql) is outbox


def test_a_value_holding_the_separator_is_refused_rather_than_split() -> None:
    assert joined(["fan-1", "fan-2"]) == "fan-1\x1efan-2"
    assert joined([]) == ""
    with pytest.raises(ValueError, match="record separator"):
        joined(["fan-1\x1efan-2"])
