"""``priceCents: "auto"`` on sequence steps: it reads back as asked, and each step's message
is priced by the pricing model when the automation worker queues it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest

from adapters.bootstrap import Container
from application.enrolments import step_message_id
from application.pricing import GRID
from domain.enrolment import enrolment_stream_id
from domain.message import message_stream_id
from tests.integration.test_automations import Clock, fan, metrics_of, sequence, settle
from tests.support.fresh_app import auth_for
from worker.automations import AutomationWorker

pytestmark = pytest.mark.timeout(90)


async def step_prices(
    container: Container, tenant: str, sequence_id: int, fan_id: int, steps: int
) -> list[int | None]:
    run = enrolment_stream_id(sequence_id, fan_id, 1)
    found: list[int | None] = []
    for step in range(steps):
        recorded = await container.events.load(
            message_stream_id(tenant, step_message_id(run, step))
        )
        found.append(recorded[0].event.price_cents if recorded else None)  # type: ignore[attr-defined]
    return found


async def test_steps_priced_auto_read_back_so_and_queue_the_models_price(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    auth = await auth_for(fresh, tenant)
    # The account's evidence, as the pricing projector keeps it: 3000 sells best by far.
    await fresh.pool.executemany(
        "INSERT INTO pricing_account_counts (tenant_id, price_cents, offers, purchases)"
        " VALUES ($1, $2, 1000, $3)",
        [(tenant, price, 500 if price == 3000 else 10) for price in GRID],
    )
    clock = Clock()
    worker = AutomationWorker(fresh, now=clock)
    steps = [
        {"content": "Welcome", "priceCents": "auto"},
        {"wait": "P1D", "content": "Day two", "priceCents": "auto"},
        {"wait": "P1D", "content": "Day three", "priceCents": 500},
    ]
    sequence_id = await sequence(api, auth, steps=steps)
    fan_id = await fan(api, auth)

    await settle(fresh, worker)
    read = await metrics_of(api, auth, sequence_id)
    assert [s["priceCents"] for s in read["steps"]] == ["auto", "auto", 500]
    assert await step_prices(fresh, tenant, sequence_id, fan_id, 3) == [3000, None, None]
    for _ in range(2):
        clock.advance(timedelta(days=1))
        await settle(fresh, worker)
    assert await step_prices(fresh, tenant, sequence_id, fan_id, 3) == [3000, 3000, 500]


async def test_auto_beside_a_steps_variants_is_422(
    fresh: Container, api: httpx.AsyncClient
) -> None:
    auth = await auth_for(fresh, f"user-{uuid.uuid4().hex[:12]}")
    response = await api.post(
        "/api/crm/sequences",
        json={
            "name": "Test",
            "trigger": {"type": "fanCreated"},
            "steps": [
                {
                    "priceCents": "auto",
                    "variants": [{"content": "A"}, {"content": "B", "priceCents": 500}],
                }
            ],
        },
        headers=auth,
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
