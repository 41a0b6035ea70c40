"""A/B tests of bulk campaigns over HTTP, against the real app and a real Postgres: each fan's
message is its variant's, bad tests are refused whole, and the results per variant count what
became of each variant's messages (sent, read, replied, bought).

No worker runs in the background: tests drive the outcomes through the application's own
commands (the sender's and the webhooks') and the projectors with ``catch_up``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Container
from adapters.live.summaries import progress_with_test
from application.ab_winner import choose_winner_if_due
from application.campaign_fan_out import campaign_message_id
from application.campaigns import load_campaign
from application.context import CommandContext
from application.messages import QueueMessage, queue_message, record_sent
from application.streams import load
from application.webhooks import WebhookEvent, handle_webhook
from domain.message import Message, message_stream_id
from domain.variants import choose_variant, in_test_portion
from tests.integration.test_campaigns_api import new_fans
from worker.campaigns import CampaignWorker

BULK = "/api/messages/bulk"
CAMPAIGNS = "/api/crm/campaigns"
PROBLEM_JSON = "application/problem+json"
Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]
Count = Callable[[], Awaitable[int]]

VARIANTS = [
    {"name": "Soft", "content": "Hi {{first_name}}, something soft", "priceCents": 500},
    {
        "content": "Hey {{first_name}}, something bold",
        "priceCents": 900,
        "mediaUrls": ["https://cdn.example.com/bold.jpg"],
        "weight": 3,
    },
]


async def launched(http: httpx.AsyncClient, auth: Headers, fans: list[int], **extra: Any) -> int:
    response = await http.post(
        BULK, json={"recipientIds": fans, "variants": VARIANTS, **extra}, headers=auth
    )
    assert response.status_code == 202, response.text
    return int(response.json()["campaignId"])


async def message_of(container: Container, tenant: str, campaign_id: int, fan: int) -> Message:
    message_id = campaign_message_id(campaign_id, fan)
    message, _ = await load(container.events, message_stream_id(tenant, message_id), tenant=tenant)
    assert isinstance(message, Message)
    return message


async def test_each_fan_is_sent_the_variant_chosen_for_it_with_that_variants_price_and_media(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 12)
    await catch_up()

    campaign_id = await launched(http, auth, fans)

    for fan in fans:
        message = await message_of(container, tenant, campaign_id, fan)
        expected = choose_variant(f"campaign-{campaign_id}", fan, [1, 3])
        assert message.variant == expected
        if expected == 0:
            assert (message.content, message.price_cents) == ("Hi Fan, something soft", 500)
            assert message.attachments == ()
        else:
            assert (message.content, message.price_cents) == ("Hey Fan, something bold", 900)
            assert message.attachments == (("image", "https://cdn.example.com/bold.jpg"),)
    await catch_up()
    response = await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth)
    view = response.json()["campaign"]
    assert [v["name"] for v in view["template"]["variants"]] == ["Soft", "B"]
    test = view["abTest"]
    assert (test["goal"], test["winner"], test["decidedAt"], test["autoWinner"]) == (
        "purchase",
        None,
        None,
        False,
    )
    assert [(v["variant"], v["weight"], v["sent"]) for v in test["variants"]] == [
        ("Soft", 1, 0),
        ("B", 3, 0),
    ]
    assert [v["probabilityBest"] for v in test["variants"]] == pytest.approx([0.5, 0.5])


async def test_a_campaign_without_variants_says_nothing_of_tests(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 1)
    await catch_up()
    response = await http.post(BULK, json={"recipientIds": fans, "content": "Hi"}, headers=auth)
    campaign_id = response.json()["campaignId"]
    await catch_up()
    view = (await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth)).json()["campaign"]
    assert "abTest" not in view
    assert "variants" not in view["template"]


@pytest.mark.parametrize(
    ("extra", "status", "field"),
    [
        ({"variants": VARIANTS[:1]}, 422, "variants"),
        ({"variants": VARIANTS, "content": "Hi"}, 422, "content"),
        ({}, 422, "content"),
        ({"variants": [VARIANTS[0], {**VARIANTS[1], "weight": 0}]}, 422, "variants"),
        ({"variants": [VARIANTS[0], {**VARIANTS[1], "name": "Soft"}]}, 422, "variants"),
        ({"variants": [VARIANTS[0], {"content": "Hi {{surname}}"}]}, 422, "content"),
        ({"variants": VARIANTS, "abTest": {"threshold": 1.0}}, 422, "threshold"),
        ({"variants": VARIANTS, "abTest": {"autoWinner": True}}, 422, "holdout"),
        ({"variants": VARIANTS, "abTest": {"holdout": 100, "autoWinner": True}}, 422, "holdout"),
        ({"variants": VARIANTS, "abTest": {"goal": "revenue"}}, 400, None),
        ({"content": "Hi", "abTest": {"goal": "purchase"}}, 422, "variants"),
        ({"variants": [{"content": "x", "colour": "red"}, VARIANTS[0]]}, 400, None),
    ],
)
async def test_a_malformed_test_is_refused_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    catch_up: CatchUp,
    events_of_tenant: Count,
    extra: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    fans = await new_fans(http, auth, 2)
    await catch_up()
    before = await events_of_tenant()

    response = await http.post(BULK, json={"recipientIds": fans, **extra}, headers=auth)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    if field is not None:
        assert response.json()["field"] == field
    assert await events_of_tenant() == before


async def test_a_draft_campaign_takes_its_variants_in_its_template(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 2)
    await catch_up()
    response = await http.post(
        CAMPAIGNS,
        json={
            "name": "Draft test",
            "template": {"variants": VARIANTS},
            "targetAudience": {"recipientIds": fans},
            "abTest": {"goal": "reply", "minPerVariant": 50, "threshold": 0.9},
        },
        headers=auth,
    )
    assert response.status_code == 201, response.text
    await catch_up()
    view = (await http.get(f"{CAMPAIGNS}/{response.json()['id']}", headers=auth)).json()
    test = view["campaign"]["abTest"]
    assert (test["goal"], test["minPerVariant"], test["threshold"]) == ("reply", 50, 0.9)


async def webhook(container: Container, ctx: CommandContext, kind: str, **data: Any) -> None:
    event = WebhookEvent(id=uuid.uuid4().hex, type=kind, account="acct", data=data)  # type: ignore[arg-type]
    await handle_webhook(event, ctx, store=container.events, ids=container.ids)


async def test_the_results_count_each_variants_sends_reads_replies_and_purchases(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 40)
    await catch_up()
    campaign_id = await launched(http, auth, fans)
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)
    of = {fan: choose_variant(f"campaign-{campaign_id}", fan, [1, 3]) for fan in fans}
    soft = [fan for fan in fans if of[fan] == 0]
    bold = [fan for fan in fans if of[fan] == 1]
    assert len(soft) >= 3
    assert len(bold) >= 3
    ids = {fan: campaign_message_id(campaign_id, fan) for fan in fans}
    for fan in fans[:-1]:  # the last one is never sent
        await record_sent(ids[fan], f"p-{fan}", ctx, store=container.events)
    # Soft: two read, one of them bought (reported twice: one purchase); one fan replied twice
    # (counted once).
    await webhook(container, ctx, "message.read", messageId=ids[soft[0]])
    await webhook(container, ctx, "message.read", messageId=ids[soft[1]])
    for _ in range(2):
        await webhook(container, ctx, "message.purchased", messageId=ids[soft[0]], amountCents=500)
    for n in range(2):
        await webhook(
            container,
            ctx,
            "message.received",
            fanId=soft[2],
            platformMessageId=f"in-{uuid.uuid4().hex}-{n}",
            text="ok",
        )
    # Bold: a reply after the account wrote again answers that message, not the campaign's.
    one_to_one = QueueMessage(recipient_id=bold[0], content="how are you?")
    await queue_message(one_to_one, ctx, store=container.events, ids=container.ids)
    await webhook(
        container,
        ctx,
        "message.received",
        fanId=bold[0],
        platformMessageId=uuid.uuid4().hex,
        text="fine",
    )
    await webhook(
        container,
        ctx,
        "message.received",
        fanId=bold[1],
        platformMessageId=uuid.uuid4().hex,
        text="yes",
    )
    await webhook(container, ctx, "message.purchased", messageId=ids[bold[1]], amountCents=900)
    await catch_up()

    response = await http.get(f"{CAMPAIGNS}/{campaign_id}/metrics", headers=auth)
    assert response.status_code == 200, response.text
    results = {v["variant"]: v for v in response.json()["abTest"]["variants"]}
    sent_soft = len([f for f in soft if f != fans[-1]])
    sent_bold = len([f for f in bold if f != fans[-1]])
    assert (
        results["Soft"]
        | {
            "sent": sent_soft,
            "opened": 2,
            "replied": 1,
            "purchased": 1,
            "revenueCents": 500,
            "sentToRest": 0,
        }
        == results["Soft"]
    )
    assert (
        results["B"]
        | {
            "sent": sent_bold,
            "opened": 0,
            "replied": 1,
            "purchased": 1,
            "revenueCents": 900,
        }
        == results["B"]
    )
    assert results["Soft"]["conversion"] == pytest.approx(1 / sent_soft, abs=1e-6)
    assert sum(v["probabilityBest"] for v in results.values()) == pytest.approx(1)


async def test_a_variant_holding_a_sensitive_word_refuses_the_whole_campaign(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, events_of_tenant: Count
) -> None:
    fans = await new_fans(http, auth, 2)
    put = await http.put("/api/crm/sensitive-words", json={"words": ["venmo"]}, headers=auth)
    assert put.status_code == 200, put.text
    await catch_up()
    before = await events_of_tenant()
    variants = [VARIANTS[0], {"content": "Tip me on Venmo, {{name}}"}]

    response = await http.post(
        BULK, json={"recipientIds": fans, "variants": variants}, headers=auth
    )

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "content"
    assert await events_of_tenant() == before


async def test_two_workers_judging_at_once_record_one_winner_and_the_rest_get_it_once(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 40)
    await catch_up()
    response = await http.post(
        BULK,
        json={
            "recipientIds": fans,
            "variants": VARIANTS,
            "abTest": {"autoWinner": True, "holdout": 50, "minPerVariant": 3, "threshold": 0.9},
        },
        headers=auth,
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    campaign_id = accepted["campaignId"]
    key = f"campaign-{campaign_id}"
    portion = [fan for fan in fans if in_test_portion(key, fan, 50)]
    assert (accepted["queued"], accepted["status"]) == (len(portion), "queueing")
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)
    for fan in portion:  # every B message of the test bought, no A message
        message_id = campaign_message_id(campaign_id, fan)
        await record_sent(message_id, f"p-{fan}", ctx, store=container.events)
        if choose_variant(key, fan, [1, 3]) == 1:
            await webhook(
                container, ctx, "message.purchased", messageId=message_id, amountCents=900
            )
    bought = sum(choose_variant(key, fan, [1, 3]) == 1 for fan in portion)
    # The view judged must hold every send and purchase: a catch-up stops short of a
    # transaction still open anywhere on a shared server, so it is repeated until it does.
    for _ in range(50):
        await catch_up()
        test = await container.campaigns.ab_test(campaign_id)
        assert test is not None
        counts = [v.test for v in test.variants]
        if (sum(c.sent for c in counts), sum(c.purchased for c in counts)) == (
            len(portion),
            bought,
        ):
            break
        await asyncio.sleep(0.1)
    assert test.awaiting_winner

    judged = await asyncio.gather(
        *(
            choose_winner_if_due(
                campaign_id,
                test,
                ctx,
                store=container.events,
                audience=container.campaigns,
            )
            for _ in range(2)
        ),
        return_exceptions=True,
    )

    assert sorted(judged, key=str) == [1, None]
    worker = CampaignWorker(container)
    for _ in range(20):  # the database is shared: the worker may have others' work too
        await catch_up()
        campaign, _ = await load_campaign(container.events, campaign_id, tenant=None)
        if campaign.fanned_out:
            break
        await worker.run_once()
    assert campaign.fanned_out
    assert campaign.winner == 1
    queued = await container.pool.fetch(
        "SELECT data->>'fan_id' AS fan, data->>'variant' AS variant, data->>'to_rest' AS rest"
        " FROM events WHERE event_type = 'MessageQueued' AND (data->>'campaign_id')::bigint = $1",
        campaign_id,
    )
    assert sorted(int(r["fan"]) for r in queued) == sorted(fans)
    rest = [r for r in queued if r["rest"] == "true"]
    assert sorted(int(r["fan"]) for r in rest) == sorted(set(fans) - set(portion))
    assert {r["variant"] for r in rest} == {"1"}
    await catch_up()
    view = (await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth)).json()["campaign"]
    assert view["abTest"]["winner"] == "B"
    assert view["abTest"]["decidedAt"] is not None
    assert view["abTest"]["variants"][1]["sentToRest"] == 0  # queued, not sent yet


async def test_the_live_streams_campaign_progress_carries_the_tests_standing_as_the_api_does(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 12)
    await catch_up()
    campaign_id = await launched(http, auth, fans)
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)
    for fan in fans[:8]:
        message_id = campaign_message_id(campaign_id, fan)
        await record_sent(message_id, f"p-{fan}", ctx, store=container.events)
    await catch_up()

    view = await container.campaigns.get_campaign(tenant, campaign_id)
    assert view is not None
    progress = await progress_with_test(view)
    answered = (await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth)).json()["campaign"]
    assert progress["type"] == "campaign.progress"
    assert progress["abTest"] == answered["abTest"]
    assert sum(v["sent"] for v in progress["abTest"]["variants"]) == 8
