"""/api/crm/sequences over HTTP, against the real app and Postgres: CRUD, validation, roles,
tenants. No projector runs in the background: a test reads its writes after ``catch_up``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.bootstrap import Container
from adapters.postgres.api_keys import create_api_key
from tests.integration.test_messaging_api import assert_problem

SEQUENCES = "/api/crm/sequences"
Headers = dict[str, str]


def welcome_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Welcome",
        "trigger": {"type": "fanCreated"},
        "steps": [
            {"wait": "PT0S", "content": "Hi {{first_name|babe}}"},
            {"wait": "P1D", "content": "Day two", "priceCents": 500},
            {"wait": "P2D", "at": "09:00", "content": "See you"},
        ],
        "exit": {"replied": True, "tagAdded": ["vip"]},
        "timeZone": "Europe/London",
        **fields,
    }


async def create(http: httpx.AsyncClient, auth: Headers, **fields: Any) -> dict[str, Any]:
    response = await http.post(SEQUENCES, json=welcome_body(**fields), headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_created_sequence_reads_back_with_empty_metrics_per_step(
    http: httpx.AsyncClient, auth: Headers, catch_up: Any
) -> None:
    created = await create(http, auth)
    assert created["position"] > 0
    sequence_id = created["sequence"]["id"]

    await catch_up()
    got = await http.get(f"{SEQUENCES}/{sequence_id}", headers=auth)

    assert got.status_code == 200, got.text
    sequence = got.json()["sequence"]
    assert sequence["status"] == "active"
    assert sequence["trigger"] == {"type": "fanCreated"}
    assert sequence["timeZone"] == "Europe/London"
    assert sequence["exit"]["tagAdded"] == ["vip"]
    assert [s["wait"] for s in sequence["steps"]] == ["PT0S", "P1D", "P2D"]
    assert sequence["steps"][2]["at"] == "09:00"
    assert sequence["steps"][1]["priceCents"] == 500
    assert [m["step"] for m in sequence["metrics"]] == [0, 1, 2]
    assert sequence["metrics"][0] == {
        "step": 0,
        "entered": 0,
        "sent": 0,
        "replied": 0,
        "purchased": 0,
        "revenueCents": 0,
        "exited": {},
    }


async def test_the_list_is_newest_first_in_keyset_pages(
    http: httpx.AsyncClient, auth: Headers, catch_up: Any
) -> None:
    ids = [(await create(http, auth, name=f"S{n}"))["sequence"]["id"] for n in range(3)]
    await catch_up()

    first = (await http.get(SEQUENCES, params={"limit": 2}, headers=auth)).json()
    rest = await http.get(
        SEQUENCES, params={"limit": 2, "cursor": first["nextCursor"]}, headers=auth
    )

    assert [s["id"] for s in first["sequences"]] == ids[::-1][:2]
    assert [s["id"] for s in rest.json()["sequences"]] == ids[:1]
    assert rest.json()["nextCursor"] is None


async def test_edits_pause_resume_and_archive_follow_the_lifecycle(
    http: httpx.AsyncClient, auth: Headers, catch_up: Any
) -> None:
    sequence_id = (await create(http, auth))["sequence"]["id"]
    base = f"{SEQUENCES}/{sequence_id}"

    edited = await http.patch(base, json={"name": "Hello", "reentry": "afterExit"}, headers=auth)
    paused = await http.post(f"{base}/pause", headers=auth)
    paused_again = await http.post(f"{base}/pause", headers=auth)
    resumed = await http.post(f"{base}/resume", headers=auth)
    archived = await http.delete(base, headers=auth)
    edit_after = await http.patch(base, json={"name": "Again"}, headers=auth)

    assert edited.json()["sequence"]["name"] == "Hello"
    assert edited.json()["sequence"]["reentry"] == "afterExit"
    assert paused.json()["sequence"]["status"] == "paused"
    assert_problem(paused_again, 409)
    assert resumed.json()["sequence"]["status"] == "active"
    assert archived.json()["sequence"]["status"] == "archived"
    assert_problem(edit_after, 409)
    await catch_up()
    listed = (await http.get(f"{base}", headers=auth)).json()["sequence"]
    assert listed["name"] == "Hello"
    assert listed["status"] == "archived"


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"trigger": {"type": "birthday"}}, 400, None),
        ({"trigger": {"type": "tagAdded"}}, 422, "trigger"),
        ({"trigger": {"type": "inactive", "days": 0}}, 422, "trigger"),
        ({"steps": []}, 422, "steps"),
        ({"steps": [{"wait": "P1M", "content": "x"}]}, 422, "wait"),
        ({"steps": [{"at": "7am", "content": "x"}]}, 422, "at"),
        ({"steps": [{"content": "Hi {{nickname}}"}]}, 422, "content"),
        ({"steps": [{"content": "x", "priceCents": 100}]}, 422, "priceCents"),
        ({"timeZone": "Mars/Olympus"}, 422, "timeZone"),
        ({"reentry": "sometimes"}, 400, None),
        ({"status": "archived"}, 400, None),
        ({"colour": "red"}, 400, None),
    ],
)
async def test_a_sequence_breaking_a_rule_is_refused_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Any,
    fields: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    before = await events_of_tenant()

    response = await http.post(SEQUENCES, json=welcome_body(**fields), headers=auth)

    problem = assert_problem(response, status)
    if field is not None:
        assert problem["field"] == field
    assert await events_of_tenant() == before


async def test_another_accounts_sequence_is_404_to_read_and_to_change(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: Any
) -> None:
    theirs = (await create(http, other_auth))["sequence"]["id"]
    await catch_up()

    for response in (
        await http.get(f"{SEQUENCES}/{theirs}", headers=auth),
        await http.patch(f"{SEQUENCES}/{theirs}", json={"name": "Mine"}, headers=auth),
        await http.post(f"{SEQUENCES}/{theirs}/pause", headers=auth),
        await http.delete(f"{SEQUENCES}/{theirs}", headers=auth),
    ):
        assert_problem(response, 404)
    mine = (await http.get(SEQUENCES, headers=auth)).json()["sequences"]
    assert theirs not in [s["id"] for s in mine]


async def test_an_auditor_key_reads_sequences_and_changes_none(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers, catch_up: Any
) -> None:
    sequence_id = (await create(http, auth))["sequence"]["id"]
    key, _ = await create_api_key(container.pool, user_id=tenant, role="auditor")
    auditor = {"Authorization": f"Bearer {key}"}
    await catch_up()

    read = await http.get(f"{SEQUENCES}/{sequence_id}", headers=auditor)
    created = await http.post(SEQUENCES, json=welcome_body(), headers=auditor)
    paused = await http.post(f"{SEQUENCES}/{sequence_id}/pause", headers=auditor)

    assert read.status_code == 200, read.text
    assert_problem(created, 403)
    assert_problem(paused, 403)


async def test_an_edit_breaking_a_rule_is_refused_and_records_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Any
) -> None:
    sequence_id = (await create(http, auth))["sequence"]["id"]
    before = await events_of_tenant()

    for body, field in (
        ({"steps": [{"wait": "P1Y", "content": "x"}]}, "wait"),
        ({"timeZone": "Nowhere/Else"}, "timeZone"),
        ({"name": ""}, "name"),
    ):
        response = await http.patch(f"{SEQUENCES}/{sequence_id}", json=body, headers=auth)
        assert assert_problem(response, 422)["field"] == field

    assert await events_of_tenant() == before
