"""A campaign never stalls silently: a fan it cannot queue is skipped with the reason, and a
fan-out that cannot move on is reported (log, /metrics, `crm campaigns status`).

No worker runs in the background: tests drive the campaign worker and the projectors."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from structlog.testing import capture_logs

from adapters import metrics
from adapters.bootstrap import Container, core_projections
from adapters.cli_campaigns import status_command
from application.campaign_fan_out import campaign_message_id
from application.campaigns import AudienceChunk, load_campaign
from application.errors import ConcurrencyError
from domain.campaign import Campaign
from worker.campaigns import CampaignWorker

CAMPAIGNS = "/api/crm/campaigns"
FANS = "/api/crm/fans"

Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]


async def new_fans(http: httpx.AsyncClient, auth: Headers, count: int) -> list[int]:
    ids = []
    for n in range(count):
        response = await http.post(FANS, json={"name": f"Fan {n}"}, headers=auth)
        assert response.status_code == 201, response.text
        ids.append(int(response.json()["fan"]["id"]))
    return ids


async def caught_up(catch_up: CatchUp, container: Container) -> None:
    """Every core projector past what is committed now (a catch-up stops short of events that
    committed after a transaction still open elsewhere on the server: repeated until then)."""
    position = int(await container.pool.fetchval("SELECT max(position) FROM events"))
    names = [projection.name for projection in core_projections()]
    async with asyncio.timeout(30):
        while True:
            await catch_up()
            reached = [await container.projection_store.checkpoint(name) for name in names]
            if min(checkpoint.position for checkpoint in reached) >= position:
                return
            await asyncio.sleep(0.05)


async def draft(http: httpx.AsyncClient, auth: Headers, fans: list[int]) -> int:
    created = await http.post(
        CAMPAIGNS,
        json={
            "name": "Stall test",
            "template": {"content": "Hi {{name}}"},
            "targetAudience": {"recipientIds": fans},
            "status": "draft",
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def launch(http: httpx.AsyncClient, auth: Headers, campaign_id: int) -> None:
    launched = await http.patch(
        f"{CAMPAIGNS}/{campaign_id}", json={"status": "active"}, headers=auth
    )
    assert launched.status_code == 200, launched.text


async def test_a_taken_message_id_skips_its_fan_with_the_reason_and_the_campaign_goes_on(
    http: httpx.AsyncClient, auth: Headers, container: Container, catch_up: CatchUp
) -> None:
    fans = await new_fans(http, auth, 3)
    await caught_up(catch_up, container)
    campaign_id = await draft(http, auth, fans)
    # The tenant itself sends a message of its own under the id the campaign will derive.
    taken = campaign_message_id(campaign_id, fans[1])
    sent = await http.post(
        "/api/onlyfans/messages/send",
        json={"recipientId": fans[1], "content": "Mine", "messageId": taken},
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    await launch(http, auth, campaign_id)
    await caught_up(catch_up, container)

    with capture_logs() as logs:
        await CampaignWorker(container).run_once()

    campaign, _ = await load_campaign(container.events, campaign_id, tenant=None)
    assert (campaign.queued, campaign.skipped, campaign.fanned_out) == (2, 1, True)
    chunks = [
        r.event
        for r in await container.events.load(campaign.id)
        if isinstance(r.event, Campaign.ChunkQueued)
    ]
    [(fan_id, reason)] = [skip for chunk in chunks for skip in chunk.skipped_fans]
    assert fan_id == fans[1]
    assert taken in reason
    assert "already used" in reason
    [skipped] = [line for line in logs if line["event"] == "campaign recipient skipped"]
    assert skipped["log_level"] == "warning"
    assert (skipped["campaign_id"], skipped["fan_id"]) == (campaign_id, fans[1])
    assert not [line for line in logs if line["event"] == "campaign stalled"]
    await caught_up(catch_up, container)
    view = (await http.get(f"{CAMPAIGNS}/{campaign_id}", headers=auth)).json()["campaign"]
    assert (view["progress"]["queued"], view["progress"]["skipped"]) == (2, 1)


class StuckAudience:
    """The real audience, except that one campaign's chunks always meet a conflict."""

    def __init__(self, real: Any, campaign_id: int) -> None:
        self.real = real
        self.campaign_id = campaign_id
        self.stuck = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def chunk(self, campaign: Campaign, after: int, limit: int) -> AudienceChunk:
        if self.stuck and campaign.campaign_id == self.campaign_id:
            raise ConcurrencyError("fan-1 at 3, expected 2")
        return await self.real.chunk(campaign, after, limit)


def prometheus_lines(text: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of each sample of ``name``, with the exporter's own labels dropped."""
    found = []
    for match in re.finditer(rf"^{name}(?:{{(.*)}})? (\S+)$", text, re.MULTILINE):
        labels = ",".join(
            part for part in (match.group(1) or "").split(",") if part and "otel_" not in part
        )
        found.append((labels, float(match.group(2))))
    return found


async def test_a_campaign_that_cannot_move_on_is_reported_stalled_until_it_moves_again(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    database_url: str,
    catch_up: CatchUp,
) -> None:
    fans = await new_fans(http, auth, 2)
    await caught_up(catch_up, container)
    campaign_id = await draft(http, auth, fans)
    await launch(http, auth, campaign_id)
    await caught_up(catch_up, container)
    audience = StuckAudience(container.campaigns, campaign_id)
    worker = CampaignWorker(dataclasses.replace(container, campaigns=audience))
    metrics.configure_from_env({})

    with capture_logs() as logs:
        await worker.run_once()
        await worker.run_once()
    out = io.StringIO()
    stalled = await status_command(database_url, out=out)
    scraped = (await http.get("/metrics")).text

    reports = [line for line in logs if line["event"] == "campaign stalled"]
    assert [r["campaign_id"] for r in reports] == [campaign_id, campaign_id]
    assert {r["log_level"] for r in reports} == {"warning"}
    assert reports[-1]["reason"] == "fan-1 at 3, expected 2"
    assert reports[-1]["rounds"] == 2
    assert prometheus_lines(scraped, "onlyfans_bulk_stalled_total") == [("", 2.0)]
    [(labels, now_stalled)] = prometheus_lines(scraped, "onlyfans_bulk_stalled_campaigns")
    assert now_stalled >= 1
    assert "tenant" not in labels
    assert stalled >= 1
    [line] = [row for row in out.getvalue().splitlines() if row.split()[0] == str(campaign_id)]
    assert "STALLED" in line
    assert "2 rounds" in line
    assert "fan-1 at 3, expected 2" in line

    audience.stuck = False
    await worker.run_once()
    out = io.StringIO()
    await status_command(database_url, out=out)

    [line] = [row for row in out.getvalue().splitlines() if row.split()[0] == str(campaign_id)]
    assert "STALLED" not in line
    campaign, _ = await load_campaign(container.events, campaign_id, tenant=None)
    assert (campaign.queued, campaign.fanned_out) == (2, True)
