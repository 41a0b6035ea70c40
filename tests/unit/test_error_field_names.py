"""Errors speak the domain's words: the domain and the application name a field as they do
(snake_case), and adapters/http/problems.py applies the API's camelCase names, once, when it
builds the answer (tests/integration/test_error_field_names.py pins the HTTP answers)."""

from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path

import pytest

from adapters.http.problems import api_name, invalid_value
from domain.campaign import Campaign
from domain.errors import InvalidValue

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_WORD = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _field_names_raised(folder: str) -> list[tuple[str, int, str]]:
    """Every field name written out where domain or application code raises InvalidValue."""
    return [
        (path.name, node.lineno, node.args[0].value)
        for path in sorted((ROOT / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", None)) == "InvalidValue"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


@pytest.mark.parametrize("folder", ["domain", "application"])
def test_domain_and_application_name_fields_in_snake_case(folder: str) -> None:
    names = _field_names_raised(folder)

    assert names  # the scan finds the raises it is meant to check
    assert [n for n in names if not DOMAIN_WORD.fullmatch(n[2])] == []


@pytest.mark.parametrize(
    ("domain", "api"),
    [
        ("price_cents", "priceCents"),
        ("recipient_ids", "recipientIds"),
        ("min_value_cents", "minValueCents"),
        ("campaign_name", "campaignName"),
        ("content", "content"),
    ],
)
def test_the_answer_names_a_field_as_the_api_does(domain: str, api: str) -> None:
    assert api_name(domain) == api
    assert invalid_value(domain, "is wrong") == (api, f"{api}: is wrong")


def test_a_campaign_names_its_broken_rule_in_the_domains_words() -> None:
    with pytest.raises(InvalidValue) as raised:
        Campaign.create(
            campaign_id=1,
            tenant="t",
            name="launch",
            kind="bulk_message",
            content="hi",
            recipient_ids=[1],
            scheduled_at=datetime(2030, 1, 1),  # no time zone
        )

    assert (raised.value.field, str(raised.value)) == (
        "scheduled_at",
        "scheduled_at: must carry a timezone",
    )
    assert invalid_value(raised.value.field, raised.value.message)[0] == "scheduledAt"
