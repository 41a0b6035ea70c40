"""Error texts name fields as the API does (issue 14, item 15): a problem's ``detail`` said
``value_cents: must not be negative`` while its ``field`` said ``valueCents``. The domain
names fields as Python does; adapters/http/problems.api_name translates them, in one place,
for every text a client reads."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.support.imports import assert_problem

Headers = dict[str, str]
SNAKE = re.compile(r"\b[a-z]+_[a-z_]+\b")


def assert_named_as_the_api(problem: dict[str, Any], field: str) -> None:
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: "), problem["detail"]
    assert not SNAKE.search(problem["detail"]), problem["detail"]


async def test_a_fans_value_is_named_value_cents_in_the_detail_too(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.post(
        "/api/crm/fans", json={"name": "Ann", "valueCents": -1}, headers=auth
    )

    assert_named_as_the_api(assert_problem(response, 422), "valueCents")


async def test_a_recipient_that_is_no_fan_id_is_named_recipient_id(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    for recipient in ("abc", 987_654_321):
        response = await http.post(
            "/api/onlyfans/messages/send",
            json={"recipientId": recipient, "content": "hi"},
            headers=auth,
        )

        assert_named_as_the_api(assert_problem(response, 422), "recipientId")


async def test_a_conversation_for_no_fan_is_named_fan_id(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.post("/api/crm/conversations", json={"fanId": 987_654_321}, headers=auth)

    assert_named_as_the_api(assert_problem(response, 422), "fanId")


async def test_batch_items_name_their_fields_as_the_api_does(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.post(
        "/api/onlyfans/messages/batch",
        json={
            "messages": [
                {"recipientId": "abc", "content": "hi"},
                {"recipientId": 987_654_321, "content": "hi", "messageId": "nope"},
            ]
        },
        headers=auth,
    )

    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [item["field"] for item in results] == ["recipientId", "messageId"]
    for item in results:
        assert item["status"] == "failed"
        # The same text as the problem+json of the same mistake in /send.
        assert item["error"].startswith(f"{item['field']}: "), item["error"]
        assert not SNAKE.search(item["error"]), item["error"]
