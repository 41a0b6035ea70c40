"""Bulk messages and campaigns over HTTP, against the real app and a real Postgres.

No worker runs in the background: the bulk send queues a small audience before answering,
and tests drive the campaign worker (``CampaignWorker.run_once``) and the projectors
(``catch_up``) themselves. Every test works in a tenant of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Container
from application import streams
from application.campaign_fan_out import (
    campaign_message_id,
    cancel_message,
    fan_out_chunk,
    hold_message,
)
from application.context import CommandContext
from application.messages import record_sent
from domain.message import message_stream_id
from projections.fans import FansProjection
from projections.runner import ProjectionRunner
from tests.support.campaigns import bulk_fans
from worker.campaigns import CampaignWorker

BULK = "/api/messages/bulk"
CAMPAIGNS = "/api/crm/campaigns"
FANS = "/api/crm/fans"
PROBLEM_JSON = "application/problem+json"

Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]
Count = Callable[[], Awaitable[int]]


async def new_fans(http: httpx.AsyncClient, auth: Headers, count: int, **fields: Any) -> list[int]:
    ids = []
    batch = uuid.uuid4().hex[:8]  # a handle is unique per account: each call its own handles
    for i in range(count):
        body = {"name": f"Fan {i}", "handle": f"fan_{batch}_{i}", **fields}
        response = await http.post(FANS, json=body, headers=auth)
        assert response.status_code == 201, response.text
        ids.append(response.json()["fan"]["id"])
    return ids


async def outbox_rows(container: Container, tenant: str) -> list[Any]:
    return await container.pool.fetch(
        "SELECT queue, message_id FROM outbox WHERE body::jsonb->>'tenant' = $1", tenant
    )


async def campaign(http: httpx.AsyncClient, auth: Headers, campaign_id: int) -> dict[str, Any]:
    response = await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["campaign"]


async def test_a_bulk_send_to_three_fans_queues_three_normal_priority_messages(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 3)
    await catch_up()

    response = await http.post(
        BULK,
        json={
            "recipientIds": fans,
            "content": "Hi {{first_name|babe}}, special offer!",
            "campaignName": "Black Friday",
            "priority": 8,
        },
        headers=auth,
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["totalRecipients"] == 3
    assert body["queued"] == 3
    assert body["failed"] == 0
    assert body["status"] == "queued"
    assert datetime.fromisoformat(body["estimatedCompletionTime"]) > datetime.now(UTC)
    rows = await outbox_rows(container, tenant)
    # Priority 8 would be the high queue for a one-to-one message; a campaign never is.
    assert sorted(r["message_id"] for r in rows) == sorted(
        campaign_message_id(body["campaignId"], fan) for fan in fans
    )
    assert {r["queue"] for r in rows} == {"normal"}

    await catch_up()
    view = await campaign(http, auth, body["campaignId"])
    assert view["status"] == "active"
    assert view["name"] == "Black Friday"
    assert view["metrics"]["queued"] == 3
    assert view["progress"] == {
        "totalRecipients": 3,
        "queued": 3,
        "sent": 0,
        "remaining": 3,
        "skipped": 0,
    }


async def test_the_worker_fans_out_a_large_audience_once_per_fan(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 30, tags=["vip"])
    others = await new_fans(http, auth, 5)
    await catch_up()

    response = await http.post(
        BULK,
        json={"segment": {"tags": ["VIP"]}, "content": "Hello {{name}}"},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    campaign_id = response.json()["campaignId"]
    assert response.json()["totalRecipients"] == 30
    late = await new_fans(http, auth, 2, tags=["vip"])  # after launch: never in the audience
    await catch_up()

    worker = CampaignWorker(container)
    worker.chunk_size = 7
    while await worker.run_once():
        await catch_up()

    rows = await outbox_rows(container, tenant)
    assert sorted(r["message_id"] for r in rows) == sorted(
        campaign_message_id(campaign_id, fan) for fan in fans
    )
    assert not {campaign_message_id(campaign_id, fan) for fan in others + late} & {
        r["message_id"] for r in rows
    }
    await catch_up()
    view = await campaign(http, auth, campaign_id)
    assert view["metrics"]["queued"] == 30
    assert view["progress"]["remaining"] == 30


async def test_unknown_and_other_tenant_recipients_are_reported_per_id(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    mine = await new_fans(http, auth, 2)
    theirs = await new_fans(http, other_auth, 1)
    deleted = (await new_fans(http, auth, 1))[0]
    assert (await http.delete(f"{FANS}/{deleted}", headers=auth)).status_code == 200
    await catch_up()
    unknown, beyond_bigint = 2**62, 2**63

    response = await http.post(
        BULK,
        json={
            "recipientIds": [*mine, theirs[0], deleted, unknown, beyond_bigint, mine[0]],
            "content": "Hi",
        },
        headers=auth,
    )

    assert response.status_code == 202, response.text
    body = response.json()
    # Six distinct ids asked for: every one is either queued or failed.
    assert (body["totalRecipients"], body["queued"], body["failed"]) == (6, 2, 4)
    assert sorted(f["recipientId"] for f in body["failures"]) == sorted(
        [theirs[0], deleted, unknown, beyond_bigint]
    )
    assert len(await outbox_rows(container, tenant)) == 2


async def test_a_campaign_with_no_fan_of_this_account_is_refused_with_each_id(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    events_of_tenant: Count,
    catch_up: CatchUp,
) -> None:
    theirs = await new_fans(http, other_auth, 2)
    await catch_up()
    before = await events_of_tenant()

    response = await http.post(
        BULK, json={"recipientIds": [*theirs, 999_999_999], "content": "Hi"}, headers=auth
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert sorted(e["recipientId"] for e in response.json()["errors"]) == sorted(
        [*theirs, 999_999_999]
    )
    assert await events_of_tenant() == before


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"recipientIds": [], "content": "Hi"}, 422, "recipientIds"),
        ({"content": "Hi"}, 422, "recipientIds"),
        ({"segment": {}, "content": "Hi"}, 422, "recipientIds"),
        ({"recipientIds": list(range(1, 100_002)), "content": "Hi"}, 422, "recipientIds"),
        ({"recipientIds": [1], "segment": {"tags": ["a"]}, "content": "Hi"}, 422, "recipientIds"),
        ({"recipientIds": [0], "content": "Hi"}, 422, "recipientIds"),
        ({"recipientIds": [1], "content": "Hi {{surname}}"}, 422, "content"),
        ({"recipientIds": [1], "content": "Hi {{name"}, 422, "content"),
        ({"recipientIds": [1], "content": "   "}, 422, "content"),
        ({"recipientIds": [1], "content": "Hi", "priceCents": 100}, 422, "priceCents"),
        ({"recipientIds": [1], "content": "Hi", "priceCents": 20_001}, 422, "priceCents"),
        ({"recipientIds": [1], "content": "Hi", "priority": 11}, 422, "priority"),
        ({"recipientIds": [1], "content": "Hi", "mediaUrls": ["http://x.io/a.jpg"]}, 422, None),
        ({"recipientIds": [1], "content": "Hi", "campaignName": " "}, 422, "campaignName"),
        ({"recipientIds": ["1"], "content": "Hi"}, 400, None),
        ({"recipientIds": [1], "content": "Hi", "surprise": 1}, 400, None),
        # content or variants, one of them: neither is a rule broken (422), not a shape (400).
        ({"recipientIds": [1]}, 422, "content"),
        ({"segment": {"activeSince": "2026-01-01T00:00:00"}, "content": "Hi"}, 422, None),
    ],
)
async def test_bad_bulk_requests_are_refused_and_change_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    body: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    before = await events_of_tenant()

    response = await http.post(BULK, json=body, headers=auth)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    if field is not None:
        assert response.json()["field"] == field
    assert await events_of_tenant() == before


async def test_a_campaign_moves_through_its_lifecycle_and_refuses_illegal_moves(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 2)
    await catch_up()
    created = await http.post(
        CAMPAIGNS,
        json={
            "name": "Drip",
            "template": {"content": "Hey {{name}}", "priceCents": 500},
            "targetAudience": {"recipientIds": fans},
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert created.json()["status"] == "draft"

    async def move(action: str, headers: Headers = auth) -> httpx.Response:
        return await http.post(f"{CAMPAIGNS}/{campaign_id}/{action}", headers=headers)

    assert (await move("pause")).status_code == 409  # a draft is not sending
    assert (await move("resume")).status_code == 409
    assert (await move("pause", other_auth)).status_code == 404
    launched = await http.patch(
        f"{CAMPAIGNS}/{campaign_id}", json={"status": "active"}, headers=auth
    )
    assert launched.json()["status"] == "active", launched.text
    assert (await move("resume")).status_code == 409
    assert (await move("pause")).json()["status"] == "paused"
    assert (await move("pause")).status_code == 409
    assert (await move("resume")).json()["status"] == "active"
    completed = await http.patch(
        f"{CAMPAIGNS}/{campaign_id}", json={"status": "completed"}, headers=auth
    )
    assert completed.status_code == 409  # its messages are not even queued yet
    assert (await move("cancel")).json()["status"] == "cancelled"
    assert (await move("resume")).status_code == 409
    assert (await move("cancel")).status_code == 409
    bad = await http.patch(f"{CAMPAIGNS}/{campaign_id}", json={"status": "draft"}, headers=auth)
    assert bad.status_code == 400

    await catch_up()
    view = await campaign(http, auth, campaign_id)
    assert view["status"] == "cancelled"
    assert view["template"] == {"content": "Hey {{name}}", "mediaUrls": [], "priceCents": 500}
    assert view["progress"]["remaining"] == 0
    other = await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=other_auth)
    assert other.status_code == 404


async def test_campaigns_are_listed_newest_first_a_page_at_a_time(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 1)
    await catch_up()
    ids = []
    for i in range(5):
        response = await http.post(
            BULK, json={"recipientIds": fans, "content": f"Offer {i}"}, headers=auth
        )
        ids.append(response.json()["campaignId"])
    await catch_up()

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get(CAMPAIGNS, params=params, headers=auth)).json()
        seen += [c["id"] for c in page["campaigns"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == sorted(ids, reverse=True)
    bad = await http.get(CAMPAIGNS, params={"cursor": "nonsense"}, headers=auth)
    assert bad.status_code == 422


async def launch(http: httpx.AsyncClient, auth: Headers, fans: list[int]) -> int:
    response = await http.post(
        BULK, json={"recipientIds": fans, "content": "Hi {{name}}"}, headers=auth
    )
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == len(fans)
    return int(response.json()["campaignId"])


async def test_held_messages_are_released_on_resume_and_the_campaign_completes(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 3)
    await catch_up()
    campaign_id = await launch(http, auth, fans)
    ids = [campaign_message_id(campaign_id, fan) for fan in fans]
    ctx = CommandContext(tenant=tenant, actor="sender", correlation_id="test")
    worker = CampaignWorker(container)
    assert (await http.post(f"{CAMPAIGNS}/{campaign_id}/pause", headers=auth)).status_code == 200
    # What the sender does with the paused campaign's messages it receives.
    for message_id in ids[:2]:
        assert await hold_message(message_id, "campaign paused", ctx, store=container.events)
    await catch_up()
    assert (await campaign(http, auth, campaign_id))["metrics"]["held"] == 2
    await worker.run_once()  # paused: nothing to do for it (the database is shared: others)
    await catch_up()
    assert (await campaign(http, auth, campaign_id))["metrics"]["held"] == 2

    assert (await http.post(f"{CAMPAIGNS}/{campaign_id}/resume", headers=auth)).status_code == 200
    await catch_up()
    await worker.run_once()
    await catch_up()
    outbox = Counter(r["message_id"] for r in await outbox_rows(container, tenant))
    assert outbox == {ids[0]: 2, ids[1]: 2, ids[2]: 1}  # released: back on their way, once
    assert (await campaign(http, auth, campaign_id))["metrics"]["held"] == 0

    for message_id in ids:
        await record_sent(message_id, None, ctx, store=container.events)
    await catch_up()
    await worker.run_once()
    await catch_up()
    view = await campaign(http, auth, campaign_id)
    assert view["status"] == "completed"
    assert view["metrics"]["sent"] == 3
    assert view["progress"]["remaining"] == 0


async def test_a_cancelled_campaigns_held_messages_are_cancelled(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 2)
    await catch_up()
    campaign_id = await launch(http, auth, fans)
    ids = [campaign_message_id(campaign_id, fan) for fan in fans]
    ctx = CommandContext(tenant=tenant, actor="sender", correlation_id="test")
    await http.post(f"{CAMPAIGNS}/{campaign_id}/pause", headers=auth)
    await hold_message(ids[0], "campaign paused", ctx, store=container.events)
    await http.post(f"{CAMPAIGNS}/{campaign_id}/cancel", headers=auth)
    # The sender meets the other one after the cancel.
    await cancel_message(ids[1], "campaign cancelled", ctx, store=container.events)
    await catch_up()

    await CampaignWorker(container).run_once()
    await catch_up()

    view = await campaign(http, auth, campaign_id)
    assert view["metrics"] | {"queued": 2, "held": 0, "cancelled": 2, "sent": 0} == view["metrics"]
    statuses = [
        (await http.get(f"/api/crm/messages/{message_id}", headers=auth)).json()["message"][
            "status"
        ]
        for message_id in ids
    ]
    assert statuses == ["cancelled", "cancelled"]


async def test_the_openapi_document_lists_the_campaign_routes(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/schema/openapi.json")).json()["paths"]
    assert {
        BULK,
        CAMPAIGNS,
        CAMPAIGNS + "/{campaign_id}",
        CAMPAIGNS + "/{campaign_id}/pause",
    } <= set(paths)


async def test_a_path_that_merely_contains_a_public_one_still_needs_a_key(
    http: httpx.AsyncClient,
) -> None:
    for path in ("/api/audit/streams/schema-1", "/api/crm/campaigns/1/metrics"):
        response = await http.get(path)
        assert response.status_code == 401, path


async def test_a_fan_whose_conversation_the_conversations_view_lacks_gets_no_second_one(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
) -> None:
    [fan] = await new_fans(http, auth, 1)
    opened = await http.post("/api/crm/conversations", json={"fanId": fan}, headers=auth)
    conversation_id = opened.json()["id"]
    # Only the fans view catches up: the conversations view still lacks the conversation.
    await ProjectionRunner(container.projection_store, FansProjection()).catch_up()

    response = await http.post(BULK, json={"recipientIds": [fan], "content": "Hi"}, headers=auth)

    assert response.status_code == 202, response.text
    assert response.json()["queued"] == 1
    started = await container.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'ConversationStarted'"
        " AND metadata->>'tenant' = $1",
        tenant,
    )
    assert started == 1
    [queued] = await container.events.load(
        message_stream_id(tenant, campaign_message_id(response.json()["campaignId"], fan))
    )
    assert queued.event.conversation_id == conversation_id


async def test_an_active_since_segment_counts_only_fans_active_since_then(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    await new_fans(http, auth, 2, tags=["recent"])
    await catch_up()

    async def launch_since(moment: str) -> httpx.Response:
        segment = {"tags": ["recent"], "activeSince": moment}
        return await http.post(BULK, json={"segment": segment, "content": "Hi"}, headers=auth)

    past = await launch_since("2020-01-01T00:00:00Z")
    assert past.status_code == 202, past.text
    assert (past.json()["totalRecipients"], past.json()["queued"]) == (2, 2)
    # A segment is read from the views, which first take in the key's own writes (the
    # messages the first launch queued).
    await catch_up()
    future = await launch_since("2999-01-01T00:00:00Z")
    assert future.status_code == 422  # nobody matches: nothing to launch


async def test_a_person_pauses_and_resumes_while_the_fan_out_appends_to_the_campaign(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fan-out and a person take turns on the campaign: not one try is lost to a race."""
    monkeypatch.setattr(streams, "CONFLICT_RETRIES", 1)
    fans = await bulk_fans(container, tenant, 1000)
    await catch_up()
    response = await http.post(
        BULK, json={"recipientIds": fans, "content": "Hi {{name}}"}, headers=auth
    )
    assert response.status_code == 202, response.text
    campaign_id = response.json()["campaignId"]
    stop = asyncio.Event()

    async def fan_out_one_fan_at_a_time() -> None:
        # The tightest loops workers can run on the campaign's stream: a chunk per fan.
        while not stop.is_set():
            await fan_out_chunk(
                campaign_id,
                store=container.events,
                audience=container.campaigns,
                ids=container.ids,
                chunk_size=1,
                attempts=1,
            )
            await asyncio.sleep(0)

    workers = [asyncio.create_task(fan_out_one_fan_at_a_time()) for _ in range(3)]
    try:
        for action in ["pause", "resume"] * 10:
            answer = await http.post(f"{CAMPAIGNS}/{campaign_id}/{action}", headers=auth)
            assert answer.status_code == 200, answer.text
    finally:
        stop.set()
        await asyncio.gather(*workers)

    while await fan_out_chunk(
        campaign_id, store=container.events, audience=container.campaigns, ids=container.ids
    ):
        pass
    outbox = Counter(r["message_id"] for r in await outbox_rows(container, tenant))
    assert outbox == {campaign_message_id(campaign_id, fan): 1 for fan in fans}


async def test_a_worker_that_remembers_a_campaign_still_sees_it_paused(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    fans = await bulk_fans(container, tenant, 150)
    await catch_up()
    response = await http.post(BULK, json={"recipientIds": fans, "content": "Hi"}, headers=auth)
    assert response.status_code == 202, response.text
    campaign_id = response.json()["campaignId"]
    await catch_up()
    worker = CampaignWorker(container)
    worker.chunk_size = 10
    await worker.run_once()  # a chunk queued: the worker keeps the campaign as it saved it
    queued = len(await outbox_rows(container, tenant))
    assert queued == 10  # 150 fans: more than the request queues itself

    # Paused behind the worker's back: its memory and the campaigns view (not caught up) both
    # still say active; the campaign's stream says otherwise, and wins.
    assert (await http.post(f"{CAMPAIGNS}/{campaign_id}/pause", headers=auth)).status_code == 200
    await worker.run_once()
    assert len(await outbox_rows(container, tenant)) == queued


async def test_two_bulk_sends_at_once_with_one_idempotency_key_launch_one_campaign(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 3)
    await catch_up()
    headers = {**auth, "Idempotency-Key": f"bulk-{tenant}"}
    body = {"recipientIds": fans, "content": "Hi {{name}}"}

    responses = await asyncio.gather(*(http.post(BULK, json=body, headers=headers) for _ in "12"))

    assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
    assert responses[0].json() == responses[1].json()
    launched = await container.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'CampaignCreated'"
        " AND metadata->>'tenant' = $1",
        tenant,
    )
    assert launched == 1
    assert len(await outbox_rows(container, tenant)) == 3


def counted(reader: Any, name: str, tenant: str) -> float:
    """The sum of a counter's points for one tenant (series are labelled by tenant here)."""
    data = reader.get_metrics_data()
    total = 0.0
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    total += sum(
                        p.value
                        for p in metric.data.data_points
                        if (p.attributes or {}).get("tenant") == tenant
                    )
    return total


@pytest.fixture
def metric_reader() -> Any:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from adapters import metrics

    reader = InMemoryMetricReader()
    metrics.install([reader], tenant_labels=True)
    yield reader
    metrics.configure_from_env({})


async def test_campaign_messages_and_launches_are_counted_once_whoever_queues_them(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    catch_up: CatchUp,
    metric_reader: Any,
) -> None:
    fans = await new_fans(http, auth, 3)
    await catch_up()
    queued = "onlyfans.message.queued"
    launched = "onlyfans.bulk.campaign"

    # Inline: a small audience queued before the answer; its replay counts nothing more.
    once = {"Idempotency-Key": "bulk-metrics-1", **auth}
    body = {"recipientIds": fans, "content": "Hi {{name}}"}
    first = await http.post(BULK, json=body, headers=once)
    assert first.json()["queued"] == 3, first.text
    replayed = await http.post(BULK, json=body, headers=once)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert (counted(metric_reader, queued, tenant), counted(metric_reader, launched, tenant)) == (
        3,
        1,
    )

    # A draft launched by PATCH, fanned out by the worker (twice over: nothing is queued twice).
    draft = await http.post(
        CAMPAIGNS,
        json={
            "name": "Later",
            "template": {"content": "Hello {{name}}"},
            "targetAudience": {"recipientIds": fans},
        },
        headers=auth,
    )
    assert draft.status_code == 201, draft.text
    patched = await http.patch(
        f"{CAMPAIGNS}/{draft.json()['id']}", json={"status": "active"}, headers=auth
    )
    assert patched.status_code == 200, patched.text
    again = await http.patch(
        f"{CAMPAIGNS}/{draft.json()['id']}", json={"status": "active"}, headers=auth
    )
    assert again.status_code == 409  # already active: no second launch
    await catch_up()
    for worker in (CampaignWorker(container), CampaignWorker(container)):
        while await worker.run_once():
            await catch_up()
    assert (counted(metric_reader, queued, tenant), counted(metric_reader, launched, tenant)) == (
        6,
        2,
    )
