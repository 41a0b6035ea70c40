"""/api/audit over HTTP against a real Postgres: exact filters and pages over the global log,
time travel in a stream, and who may read which tenant's history."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Container
from adapters.postgres.api_keys import create_api_key, grant_tenants
from application import fans
from application.context import CommandContext

pytestmark = pytest.mark.timeout(60)

EVENTS = "/api/audit/events"
PROBLEM_JSON = "application/problem+json"
Headers = dict[str, str]


def _ctx(tenant: str, actor: str) -> CommandContext:
    return CommandContext(tenant=tenant, actor=actor, correlation_id=uuid.uuid4().hex)


async def _history(container: Container, tenant: str) -> list[int]:
    """Two fans of ``tenant`` by two actors: created, updated twice, one deleted.
    Returns the fan ids."""
    ids = []
    for actor, name in (("alice", "Ann"), ("bob", "Bea")):
        created = await fans.create_fan(
            fans.CreateFan(name=name, email=f"{name.lower()}@example.com", value_cents=100),
            _ctx(tenant, actor),
            store=container.events,
            ids=container.ids,
        )
        ids.append(created.fan.fan_id)
    for fan_id, name in ((ids[0], "Ann 2"), (ids[1], "Bea 2"), (ids[0], "Ann 3")):
        await fans.update_fan(
            fans.UpdateFan(fan_id=fan_id, changes={"name": name}),
            _ctx(tenant, "bob"),
            store=container.events,
        )
    await fans.delete_fan(
        fans.DeleteFan(fan_id=ids[1]), _ctx(tenant, "alice"), store=container.events
    )
    return ids


async def _all_pages(http: httpx.AsyncClient, headers: Headers, **params: Any) -> list[dict]:
    events: list[dict] = []
    cursor = None
    while True:
        response = await http.get(
            EVENTS, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        events += body["events"]
        cursor = body["nextCursor"]
        if cursor is None:
            return events


async def _auditor(container: Container, *tenants: str) -> Headers:
    key, principal = await create_api_key(container.pool, user_id="auditor-1", role="auditor")
    await grant_tenants(container.pool, principal.key_id, list(tenants))
    return {"Authorization": f"Bearer {key}"}


async def test_a_creator_reads_its_own_history_with_metadata_and_decrypted_fields(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    ids = await _history(container, tenant)
    events = await _all_pages(http, auth)
    assert [e["eventType"] for e in events] == [
        "FanCreated",
        "FanCreated",
        "FanUpdated",
        "FanUpdated",
        "FanUpdated",
        "FanDeleted",
    ]
    first = events[0]
    assert first["streamId"] == f"fan-{ids[0]}"
    assert first["streamType"] == "fan"
    assert first["version"] == 1
    assert first["data"]["name"] == "Ann"
    assert first["data"]["email"] == "ann@example.com"
    assert first["data"]["valueCents"] == 100
    assert first["metadata"]["tenant"] == tenant
    assert first["metadata"]["actor"] == "alice"
    assert set(first["metadata"]) >= {"correlationId", "causationId", "traceId", "schemaVersion"}
    assert first["erased"] == []


async def test_pages_follow_commit_order_and_give_every_event_exactly_once(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    await _history(container, tenant)
    whole = await _all_pages(http, auth, limit=500)
    paged = await _all_pages(http, auth, limit=2)
    assert paged == whole
    order = [(e["transactionId"], e["position"]) for e in whole]
    assert order == sorted(order)
    assert len(set(order)) == 6


async def test_each_filter_selects_exactly_the_matching_events(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    ids = await _history(container, tenant)
    whole = await _all_pages(http, auth)
    times = [e["recordedAt"] for e in whole]

    async def positions(**params: Any) -> list[int]:
        return [e["position"] for e in await _all_pages(http, auth, limit=2, **params)]

    def expected(keep: Any) -> list[int]:
        return [e["position"] for e in whole if keep(e)]

    stream = f"fan-{ids[0]}"
    assert await positions(streamId=stream) == expected(lambda e: e["streamId"] == stream)
    assert await positions(eventType="FanUpdated") == expected(
        lambda e: e["eventType"] == "FanUpdated"
    )
    assert await positions(actor="alice") == expected(lambda e: e["metadata"]["actor"] == "alice")
    assert await positions(streamType="fan") == expected(lambda e: True)
    assert await positions(streamType="message") == []
    assert await positions(tenant=tenant) == expected(lambda e: True)
    # from is inclusive, to exclusive
    assert await positions(**{"from": times[2], "to": times[5]}) == expected(
        lambda e: times[2] <= e["recordedAt"] < times[5]
    )
    assert len(await positions(**{"from": times[2], "to": times[5]})) == 3
    assert await positions(actor="bob", eventType="FanUpdated", streamId=stream) == expected(
        lambda e: (
            e["metadata"]["actor"] == "bob"
            and e["eventType"] == "FanUpdated"
            and e["streamId"] == stream
        )
    )


async def test_time_travel_returns_the_state_a_fan_had_at_a_past_timestamp(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    ids = await _history(container, tenant)
    stream = f"fan-{ids[0]}"
    history = await _all_pages(http, auth, streamId=stream)
    # Between the first and the second update of fan 0: its name was "Ann 2".
    as_of = history[1]["recordedAt"]
    response = await http.get(f"/api/audit/streams/{stream}", params={"asOf": as_of}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 2
    assert body["tenant"] == tenant
    assert [e["version"] for e in body["events"]] == [1, 2]
    assert body["state"]["name"] == "Ann 2"
    assert body["state"]["email"] == "ann@example.com"
    assert body["state"]["valueCents"] == 100
    assert body["state"]["fanId"] == ids[0]
    assert body["state"]["id"] == stream
    assert body["state"]["version"] == 2

    now = (await http.get(f"/api/audit/streams/{stream}", headers=auth)).json()
    assert now["state"]["name"] == "Ann 3"
    assert now["version"] == 3


async def test_time_travel_by_version_and_before_the_stream_existed(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    ids = await _history(container, tenant)
    deleted = f"fan-{ids[1]}"
    at_one = await http.get(f"/api/audit/streams/{deleted}?version=1", headers=auth)
    assert at_one.json()["state"]["name"] == "Bea"
    assert at_one.json()["state"]["deleted"] is False
    latest = await http.get(f"/api/audit/streams/{deleted}", headers=auth)
    assert latest.json()["state"]["deleted"] is True
    before = await http.get(
        f"/api/audit/streams/{deleted}", params={"asOf": "2000-01-01T00:00:00Z"}, headers=auth
    )
    assert before.status_code == 200
    assert before.json()["state"] is None
    assert before.json()["events"] == []
    assert before.json()["version"] == 0


async def test_an_erased_fans_history_keeps_its_amounts_and_reports_its_personal_fields_erased(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    ids = await _history(container, tenant)
    await fans.erase_fan(fans.EraseFan(fan_id=ids[0]), _ctx(tenant, "dpo"), store=container.events)
    events = await _all_pages(http, auth, streamId=f"fan-{ids[0]}")
    created = events[0]
    assert created["data"]["name"] is None
    assert created["data"]["valueCents"] == 100
    assert set(created["erased"]) >= {"name", "email"}
    assert events[-1]["eventType"] == "FanErased"


async def test_a_creator_cannot_read_another_tenants_events(
    http: httpx.AsyncClient,
    container: Container,
    tenant: str,
    auth: Headers,
    other_auth: Headers,
) -> None:
    ids = await _history(container, tenant)
    assert await _all_pages(http, other_auth) == []
    refused = await http.get(EVENTS, params={"tenant": tenant}, headers=other_auth)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    by_stream = await _all_pages(http, other_auth, streamId=f"fan-{ids[0]}")
    assert by_stream == []
    stream = await http.get(f"/api/audit/streams/fan-{ids[0]}", headers=other_auth)
    assert stream.status_code == 404
    assert stream.headers["content-type"].startswith(PROBLEM_JSON)
    assert tenant not in stream.text


async def test_an_auditor_reads_the_tenants_it_was_granted_and_no_other(
    http: httpx.AsyncClient, container: Container, tenant: str
) -> None:
    other = f"user-{uuid.uuid4().hex[:12]}"
    mine, theirs = await _history(container, tenant), await _history(container, other)
    auditor = await _auditor(container, tenant)
    events = await _all_pages(http, auditor)
    assert {e["metadata"]["tenant"] for e in events} == {tenant}
    assert len(events) == 6
    assert (await http.get(EVENTS, params={"tenant": other}, headers=auditor)).status_code == 403
    granted = await http.get(f"/api/audit/streams/fan-{mine[0]}", headers=auditor)
    assert granted.status_code == 200
    hidden = await http.get(f"/api/audit/streams/fan-{theirs[0]}", headers=auditor)
    assert hidden.status_code == 404

    both = await _auditor(container, tenant, other)
    assert len(await _all_pages(http, both)) == 12
    assert len(await _all_pages(http, both, tenant=other)) == 6


async def test_an_auditor_without_grants_sees_nothing(
    http: httpx.AsyncClient, container: Container, tenant: str
) -> None:
    await _history(container, tenant)
    assert await _all_pages(http, await _auditor(container)) == []


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "WzEsMl0"[:-1] + "x"},
        {"cursor": "Wy0xLC0xXQ"},  # [-1,-1]
        {"from": "2026-01-01T00:00:00"},  # no time zone
        {"from": "yesterday"},
        {"limit": "0"},
        {"limit": "100000"},
    ],
)
async def test_bad_queries_are_refused_with_a_problem(
    http: httpx.AsyncClient, auth: Headers, params: dict[str, str]
) -> None:
    response = await http.get(EVENTS, params=params, headers=auth)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_bad_time_travel_points_are_refused_with_a_problem(
    http: httpx.AsyncClient, container: Container, tenant: str, auth: Headers
) -> None:
    ids = await _history(container, tenant)
    stream = f"/api/audit/streams/fan-{ids[0]}"
    for params in ({"version": "-1"}, {"asOf": "2026-01-01T00:00:00"}, {"asOf": "soon"}):
        response = await http.get(stream, params=params, headers=auth)
        assert 400 <= response.status_code < 500, (params, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)


async def test_only_auditors_and_admins_read_the_chain_head(
    http: httpx.AsyncClient, container: Container, auth: Headers
) -> None:
    assert (await http.get("/api/audit/head", headers=auth)).status_code == 403
    auditor = await _auditor(container)
    head = await http.get("/api/audit/head", headers=auditor)
    assert head.status_code == 200
    assert set(head.json()) == {"sealed", "position", "transactionId", "hash", "sealedAt"}


async def test_any_aggregate_is_rendered_from_its_public_state(
    http: httpx.AsyncClient, auth: Headers, tenant: str
) -> None:
    created = await http.post("/api/crm/fans", json={"name": "Cleo"}, headers=auth)
    fan_id = created.json()["fan"]["id"]
    sent = await http.post(
        "/api/onlyfans/messages/send",
        json={"recipientId": fan_id, "content": "hello", "priceCents": 500},
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    stream = f"message-{tenant}:{sent.json()['messageId']}"
    message = await http.get(f"/api/audit/streams/{stream}", headers=auth)
    assert message.status_code == 200, message.text
    state = message.json()["state"]
    assert state["content"] == "hello"
    assert state["priceCents"] == 500
    assert state["fanId"] == fan_id
    conversation = await http.get(
        f"/api/audit/streams/conversation-{sent.json()['conversationId']}", headers=auth
    )
    assert conversation.status_code == 200, conversation.text
    assert conversation.json()["state"]["fanId"] == fan_id
