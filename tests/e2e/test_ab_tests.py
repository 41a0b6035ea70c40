"""A/B tests end to end (issue 19): a bulk campaign with two variants through the workers to
the OnlyFans simulator, whose fans truly buy variant B twice as often as A; the purchases come
back as signed webhooks; the campaign worker declares B the winner and sends it, and only it,
to the rest of the audience, each fan once.

The simulator draws each fan's behaviour from its seed and the message's id (message_rules),
so the outcome does not depend on the order in which concurrent sends reach it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from adapters import bootstrap
from adapters.onlyfans.simulator import MessageRule
from application.campaign_fan_out import campaign_message_id
from domain.variants import in_test_portion
from projections.campaign_variants import CampaignVariantsProjection
from projections.runner import ProjectionRunner
from tests.e2e.test_campaigns import campaign_keys, platform_deployment, queues_empty, until
from tests.support.campaigns import bulk_fans, catch_up_all, launch, workers

AUDIENCE = 600
HOLDOUT = 50  # percent of the audience sent the test
RULES = (
    MessageRule(contains="Offer A", purchase_probability=0.2),
    MessageRule(contains="Offer B", purchase_probability=0.4),
)


@pytest.mark.timeout(90)
async def test_the_variant_that_sells_twice_as_well_wins_and_the_rest_get_only_it(
    fresh_database_url: str,
) -> None:
    async with (
        asyncio.timeout(80),
        platform_deployment(
            fresh_database_url,
            seed=19,
            message_rules=RULES,
            webhook_delay=0.01,
            webhook_delay_jitter=0.02,
        ) as (platform, d),
    ):
        fans = await bulk_fans(d.container, d.tenant, AUDIENCE, tags=("test",))
        async with workers(d.container):
            # A segment is counted on the fans view: every fan in it first. (One catch-up may
            # stop short of the head while another database's transaction is open.)
            async def fans_seen() -> bool:
                seen = "SELECT count(*) FROM fans WHERE tenant_id = $1"
                return await d.count(seen, d.tenant) == AUDIENCE

            await until(fans_seen)
            accepted = await launch(
                d.http,
                d.auth,
                segment={"tags": ["test"]},
                campaignName="Which sells",
                variants=[
                    {"name": "A", "content": "Offer A for {{first_name}}", "priceCents": 500},
                    {"name": "B", "content": "Offer B for {{first_name}}", "priceCents": 500},
                ],
                abTest={
                    "goal": "purchase",
                    "autoWinner": True,
                    "holdout": HOLDOUT,
                    "minPerVariant": 100,
                    "threshold": 0.95,
                },
            )
            campaign_id = accepted["campaignId"]
            assert accepted["status"] == "queueing"

            async def finished() -> bool:
                view = await d.view(campaign_id)
                return view["status"] == "completed" and await queues_empty(d.container)

            await until(finished, interval=0.2)
            await catch_up_all(d.container)
            view = await d.view(campaign_id)

        test = view["abTest"]
        a, b = test["variants"]
        assert test["winner"] == "B"
        assert test["decidedAt"] is not None
        assert b["probabilityBest"] >= 0.95
        assert a["sent"] >= 100
        assert b["sent"] >= 100
        assert b["conversion"] > a["conversion"]
        # The test went to the test portion only; the rest of the audience got B alone.
        portion = {f for f in fans if in_test_portion(f"campaign-{campaign_id}", f, HOLDOUT)}
        assert a["sent"] + b["sent"] == len(portion)
        assert (a["sentToRest"], b["sentToRest"]) == (0, AUDIENCE - len(portion))
        texts = {delivery.recipient: delivery.text for delivery in platform.deliveries()}
        rest = [f for f in fans if f not in portion]
        assert {texts[str(f)].split(" for ")[0] for f in rest} == {"Offer B"}
        # Every fan exactly one message, under the id derived from (campaign, fan).
        keys = {campaign_message_id(campaign_id, f) for f in fans}
        assert campaign_keys(platform, keys) == Counter(dict.fromkeys(keys, 1))
        assert len(platform.deliveries()) == AUDIENCE
        winners = await d.count(
            "SELECT count(*) FROM events WHERE stream_id = $1"
            " AND event_type = 'CampaignWinnerChosen'",
            f"campaign-{campaign_id}",
        )
        assert winners == 1
        await replayed_equal_live(d.container)
        print(
            f"\nA/B e2e: A sent {a['sent']} bought {a['purchased']}"
            f" ({a['conversion']:.3f}), B sent {b['sent']} bought {b['purchased']}"
            f" ({b['conversion']:.3f}); P(B best) {b['probabilityBest']:.4f};"
            f" rest {b['sentToRest']} sent B"
        )


async def replayed_equal_live(container: bootstrap.Container) -> None:
    """The campaign_variants projection replayed from the first event into a fresh schema, in
    batches of another size, holds the same rows as the live one."""
    projection = CampaignVariantsProjection()
    schema = f"replay_{uuid.uuid4().hex[:8]}"
    pool = container.pool
    await pool.execute(f'CREATE SCHEMA "{schema}"')
    for table in projection.tables:
        await pool.execute(
            f'CREATE TABLE "{schema}"."{table}" (LIKE public."{table}" INCLUDING ALL)'
        )
    await ProjectionRunner(container.projection_store, projection).catch_up()
    await ProjectionRunner(
        container.projection_store, projection, schema=schema, batch_size=137
    ).catch_up()
    for table in projection.tables:
        order = "ORDER BY 1, 2, 3" if table == "campaign_variant_metrics" else "ORDER BY 1, 2"
        live = [dict(r) for r in await pool.fetch(f"SELECT * FROM public.{table} {order}")]
        again = [dict(r) for r in await pool.fetch(f'SELECT * FROM "{schema}".{table} {order}')]
        assert live, f"{table} is empty"
        assert again == live, f"{table}: the replay differs from the live projection"
