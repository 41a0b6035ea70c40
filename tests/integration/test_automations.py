"""The automation worker against real Postgres: enrolment on triggers, due steps on a clock the
test moves, exits, and exactly-once under two workers. Each test has a database of its own
(the worker follows the whole log); projectors run when the test says (``catch_up_all``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from adapters.bootstrap import Container
from application import messages
from application.context import CommandContext
from application.enrolments import step_message_id
from application.ports import Checkpoint
from application.webhooks import WebhookEvent, handle_webhook
from domain.enrolment import enrolment_stream_id
from domain.message import message_stream_id
from domain.sequence_rules import step_test_key
from domain.variants import choose_variant
from tests.support.campaigns import catch_up_all
from tests.support.fresh_app import auth_for
from worker.automations import NAME as AUTOMATIONS
from worker.automations import AutomationWorker

SEQUENCES = "/api/crm/sequences"
SEND = "/api/onlyfans/messages/send"
FANS = "/api/crm/fans"
Headers = dict[str, str]


class Clock:
    """The time the worker sees: moved by the test, never by the wall clock."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


async def sequence(http: httpx.AsyncClient, auth: Headers, **fields: Any) -> int:
    body = {
        "name": "Welcome",
        "trigger": {"type": "fanCreated"},
        "steps": [
            {"content": "Welcome {{first_name|babe}}"},
            {"wait": "P1D", "content": "Day two"},
            {"wait": "P2D", "content": "Day four"},
        ],
        **fields,
    }
    response = await http.post(SEQUENCES, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["sequence"]["id"])


async def fan(http: httpx.AsyncClient, auth: Headers, **fields: Any) -> int:
    response = await http.post(FANS, json={"name": "Ann Smith", **fields}, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


async def settle(container: Container, *workers: AutomationWorker) -> None:
    """Projectors and workers until each has read the whole log and none has anything left
    to do now. The log is read only below the oldest transaction open anywhere on the server
    (other tests' databases share it), so "nothing to do" is believed only at the head."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        head = await committed_head(container)
        await catch_up_all(container)
        did = 0
        for worker in workers:
            did += await worker.follow_once() + await worker.fire_due_once()
            did += await worker.scan_once()
        names = [p.name for p in bootstrap.all_projections()] + [AUTOMATIONS]
        reached = [await container.projection_store.checkpoint(n) >= head for n in names]
        if not did and all(reached) and head == await committed_head(container):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the workers never settled")


async def committed_head(container: Container) -> Checkpoint:
    row = await container.pool.fetchrow(
        "SELECT transaction_id, position FROM events"
        " ORDER BY transaction_id DESC, position DESC LIMIT 1"
    )
    return Checkpoint(row["transaction_id"], row["position"]) if row else Checkpoint()


async def step_messages(
    container: Container, tenant: str, sequence_id: int, fan_id: int, steps: int
) -> list[str | None]:
    """Each step's message content as the log has it (None: not queued)."""
    found: list[str | None] = []
    run = enrolment_stream_id(sequence_id, fan_id, 1)
    for step in range(steps):
        stream = message_stream_id(tenant, step_message_id(run, step))
        recorded = await container.events.load(stream)
        found.append(recorded[0].event.content if recorded else None)  # type: ignore[attr-defined]
    return found


async def reply(container: Container, tenant: str, fan_id: int) -> None:
    ctx = CommandContext(tenant=tenant, actor="webhook", correlation_id=uuid.uuid4().hex)
    event = WebhookEvent(
        id=f"wh-{uuid.uuid4()}",
        type="message.received",
        account=tenant,
        data={"fanId": fan_id, "platformMessageId": uuid.uuid4().hex, "text": "hey"},
    )
    await handle_webhook(event, ctx, store=container.events, ids=container.ids)


async def metrics_of(http: httpx.AsyncClient, auth: Headers, sequence_id: int) -> Any:
    response = await http.get(f"{SEQUENCES}/{sequence_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["sequence"]


async def test_a_welcome_series_sends_step_one_at_once_step_two_after_its_wait_and_nothing_after_a_reply(  # noqa: E501
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    clock = Clock()
    worker = AutomationWorker(fresh, now=clock)
    sequence_id = await sequence(api, auth)
    fan_id = await fan(api, auth)

    await settle(fresh, worker)
    assert await step_messages(fresh, tenant, sequence_id, fan_id, 3) == [
        "Welcome Ann",
        None,
        None,
    ]

    clock.advance(timedelta(hours=23))
    await settle(fresh, worker)
    assert (await step_messages(fresh, tenant, sequence_id, fan_id, 3))[1] is None

    clock.advance(timedelta(hours=1))
    await settle(fresh, worker)
    assert (await step_messages(fresh, tenant, sequence_id, fan_id, 3))[1] == "Day two"

    await reply(fresh, tenant, fan_id)
    await settle(fresh, worker)
    clock.advance(timedelta(days=30))
    await settle(fresh, worker)

    assert (await step_messages(fresh, tenant, sequence_id, fan_id, 3))[2] is None
    read = await metrics_of(api, auth, sequence_id)
    assert [(m["entered"], m["sent"], m["replied"]) for m in read["metrics"]] == [
        (1, 1, 0),
        (1, 1, 1),
        (1, 0, 0),
    ]
    assert read["metrics"][2]["exited"] == {"replied": 1}
    assert read["active"] == 0


async def test_a_fan_tagged_twice_enters_a_tag_sequence_once(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    worker = AutomationWorker(fresh, now=Clock())
    sequence_id = await sequence(
        api, auth, trigger={"type": "tagAdded", "tag": "vip"}, exit={"replied": False}
    )
    fan_id = await fan(api, auth)

    for tags in (["vip"], [], ["vip"]):
        changed = await api.patch(f"{FANS}/{fan_id}", json={"tags": tags}, headers=auth)
        assert changed.status_code == 200, changed.text
        await settle(fresh, worker)

    runs = [
        await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, entry)) for entry in (1, 2)
    ]
    assert [bool(run) for run in runs] == [True, False]
    assert (await metrics_of(api, auth, sequence_id))["entered"] == 1


async def test_a_tag_removed_exit_rule_ends_the_run_and_re_entry_after_exit_starts_another(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    worker = AutomationWorker(fresh, now=Clock())
    sequence_id = await sequence(
        api,
        auth,
        trigger={"type": "tagAdded", "tag": "vip"},
        exit={"replied": False, "tagRemoved": ["vip"]},
        reentry="afterExit",
    )
    fan_id = await fan(api, auth, tags=["vip"])
    await settle(fresh, worker)

    for tags in ([], ["vip"]):
        await api.patch(f"{FANS}/{fan_id}", json={"tags": tags}, headers=auth)
        await settle(fresh, worker)

    first = await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, 1))
    second = await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, 2))
    assert first[-1].event_type == "EnrolmentExited"
    assert first[-1].event.reason == "tagRemoved"  # type: ignore[attr-defined]
    assert [r.event_type for r in second] == ["EnrolmentEnrolled", "EnrolmentStepSent"]


async def test_two_workers_at_once_never_send_a_step_twice(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    clock = Clock()
    sequence_id = await sequence(
        api,
        auth,
        steps=[{"content": "One"}, {"wait": "PT1H", "content": "Two"}],
    )
    fans = [await fan(api, auth, name=f"Fan {n}") for n in range(30)]
    await catch_up_all(fresh)
    first, second = (AutomationWorker(fresh, now=clock, timer_batch=5) for _ in range(2))

    for _ in range(3):
        await asyncio.gather(settle(fresh, first), settle(fresh, second))
        clock.advance(timedelta(hours=1))

    steps_sent = await fresh.pool.fetch(
        "SELECT (event ->> 'step')::int AS step, count(*) AS n FROM ("
        "  SELECT data AS event FROM events WHERE event_type = 'EnrolmentStepSent'"
        ") s GROUP BY 1 ORDER BY 1"
    )
    assert [(r["step"], r["n"]) for r in steps_sent] == [(0, len(fans)), (1, len(fans))]
    queued = await fresh.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'MessageQueued'"
    )
    assert queued == 2 * len(fans)
    assert (await metrics_of(api, auth, sequence_id))["completed"] == len(fans)


async def test_an_inactive_fan_enters_once_its_silence_reaches_the_sequences_days(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    clock = Clock()
    worker = AutomationWorker(fresh, now=clock)
    sequence_id = await sequence(api, auth, trigger={"type": "inactive", "days": 7})
    fan_id = await fan(api, auth)

    clock.advance(timedelta(days=6))
    await settle(fresh, worker)
    assert not await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, 1))

    clock.advance(timedelta(days=1, minutes=1))
    await settle(fresh, worker)
    clock.advance(timedelta(days=30))
    await settle(fresh, worker)

    assert (await step_messages(fresh, tenant, sequence_id, fan_id, 1))[0] == "Welcome Ann"
    assert (await metrics_of(api, auth, sequence_id))["entered"] == 1


async def test_a_fan_who_has_not_answered_the_accounts_message_enters_a_no_reply_sequence(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    clock = Clock()
    worker = AutomationWorker(fresh, now=clock)
    sequence_id = await sequence(api, auth, trigger={"type": "noReply", "hours": 2})
    answered, silent = await fan(api, auth), await fan(api, auth, name="Bo")
    for fan_id in (answered, silent):
        sent = await api.post(SEND, json={"recipientId": fan_id, "content": "Hi"}, headers=auth)
        assert sent.status_code == 202, sent.text
    await reply(fresh, tenant, answered)

    clock.advance(timedelta(hours=2, minutes=1))
    await settle(fresh, worker)

    entered = [
        bool(await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, 1)))
        for fan_id in (answered, silent)
    ]
    assert entered == [False, True]


async def test_a_fan_in_two_sequences_gets_each_first_step_once_in_one_round(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    worker = AutomationWorker(fresh, now=Clock())
    first = await sequence(api, auth, steps=[{"content": "From the first"}])
    second = await sequence(api, auth, steps=[{"content": "From the second"}])
    fan_id = await fan(api, auth)

    await settle(fresh, worker)

    # One claim holds both runs of one fan: one goes in the batch, the other alone after it.
    assert await step_messages(fresh, tenant, first, fan_id, 1) == ["From the first"]
    assert await step_messages(fresh, tenant, second, fan_id, 1) == ["From the second"]
    opened = await fresh.events.load(f"fan-{fan_id}")
    assert [r.event_type for r in opened].count("FanConversationOpened") == 1


async def test_a_sequence_created_after_a_fan_does_not_greet_that_fan(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    worker = AutomationWorker(fresh, now=Clock())
    earlier = await fan(api, auth)
    sequence_id = await sequence(api, auth)
    later = await fan(api, auth, name="Bo")

    await settle(fresh, worker)

    entered = [
        bool(await fresh.events.load(enrolment_stream_id(sequence_id, fan_id, 1)))
        for fan_id in (earlier, later)
    ]
    assert entered == [False, True]


async def test_a_bought_step_counts_its_purchase_and_revenue_and_ends_the_run_if_told(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    worker = AutomationWorker(fresh, now=Clock())
    sequence_id = await sequence(
        api,
        auth,
        steps=[{"content": "A set for you", "priceCents": 500}, {"wait": "P1D", "content": "?"}],
        exit={"replied": True, "purchased": True},
    )
    fan_id = await fan(api, auth)
    await settle(fresh, worker)
    message_id = step_message_id(enrolment_stream_id(sequence_id, fan_id, 1), 0)
    relay = CommandContext(tenant=tenant, actor="relay", correlation_id=uuid.uuid4().hex)
    await messages.record_sent(message_id, "of-1", relay, store=fresh.events)
    purchase = WebhookEvent(
        id=f"wh-{uuid.uuid4()}",
        type="message.purchased",
        account=tenant,
        data={"messageId": message_id, "amountCents": 500},
    )
    await handle_webhook(purchase, relay, store=fresh.events, ids=fresh.ids)

    await settle(fresh, worker)

    read = await metrics_of(api, auth, sequence_id)
    assert (read["metrics"][0]["purchased"], read["metrics"][0]["revenueCents"]) == (1, 500)
    assert read["metrics"][1]["exited"] == {"purchased": 1}
    assert read["active"] == 0


async def test_a_step_with_variants_sends_each_fan_its_variant_and_counts_results_per_variant(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    worker = AutomationWorker(fresh, now=Clock())
    variants = [
        {"name": "Soft", "content": "Soft hello", "priceCents": 500},
        {"name": "Bold", "content": "Bold hello", "priceCents": 900, "weight": 2},
    ]
    # Two steps: a reply counts for the step a run under way sent last.
    steps = [{"variants": variants, "goal": "purchase"}, {"wait": "P1D", "content": "Later"}]
    sequence_id = await sequence(api, auth, steps=steps)
    fans = [await fan(api, auth, name=f"Fan {n}") for n in range(12)]
    await settle(fresh, worker)

    relay = CommandContext(tenant=tenant, actor="relay", correlation_id=uuid.uuid4().hex)
    chosen: dict[int, str] = {}
    for fan_id in fans:
        index = choose_variant(step_test_key(sequence_id, 0), fan_id, [1, 2])
        run = enrolment_stream_id(sequence_id, fan_id, 1)
        message_id = step_message_id(run, 0)
        (queued,) = await fresh.events.load(message_stream_id(tenant, message_id))
        # Each fan's message is its variant's, content and price, and says which it is.
        assert (queued.event.content, queued.event.price_cents) == (  # type: ignore[attr-defined]
            variants[index]["content"],
            variants[index]["priceCents"],
        )
        assert queued.event.variant == index  # type: ignore[attr-defined]
        chosen[fan_id] = variants[index]["name"]
        await messages.record_sent(message_id, f"of-{fan_id}", relay, store=fresh.events)
    assert set(chosen.values()) == {"Soft", "Bold"}
    buyer = fans[0]
    bought = WebhookEvent(
        id=f"wh-{uuid.uuid4()}",
        type="message.purchased",
        account=tenant,
        data={
            "messageId": step_message_id(enrolment_stream_id(sequence_id, buyer, 1), 0),
            "amountCents": 700,
        },
    )
    await handle_webhook(bought, relay, store=fresh.events, ids=fresh.ids)
    await reply(fresh, tenant, fans[1])
    await settle(fresh, worker)

    read = await metrics_of(api, auth, sequence_id)
    assert (
        read["steps"][0]["variants"][1] | {"name": "Bold", "weight": 2}
        == (read["steps"][0]["variants"][1])
    )
    test = read["metrics"][0]["abTest"]
    assert test["goal"] == "purchase"
    assert test["winner"] is None  # far below 100 messages a variant
    results = {v["variant"]: v for v in test["variants"]}
    for name in ("Soft", "Bold"):
        assert results[name]["sent"] == list(chosen.values()).count(name)
    assert results[chosen[buyer]]["purchased"] == 1
    assert results[chosen[buyer]]["revenueCents"] == 700
    assert results[chosen[fans[1]]]["replied"] == 1
    assert sum(v["purchased"] for v in test["variants"]) == 1
    assert sum(v["probabilityBest"] for v in test["variants"]) == pytest.approx(1)


async def test_a_step_is_one_content_or_variants_never_both(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    auth = await auth_for(fresh, f"user-{uuid.uuid4().hex[:12]}")
    variants = [{"content": "A"}, {"content": "B"}]
    for step, field in [
        ({"content": "Hi", "variants": variants}, "content"),
        ({"variants": variants[:1]}, "variants"),
        ({"variants": variants, "goal": "open"}, None),
        ({}, "content"),
    ]:
        response = await api.post(
            SEQUENCES,
            json={"name": "T", "trigger": {"type": "fanCreated"}, "steps": [step]},
            headers=auth,
        )
        assert 400 <= response.status_code < 500, (step, response.text)
        if field is not None:
            assert response.json().get("field") == field or field in response.text, step
    listed = await api.get(SEQUENCES, headers=auth)
    assert listed.json()["sequences"] == []
