"""Patreon over real HTTP: connections, member sync against the simulator (paginated,
interrupted and resumed, nothing doubled), and signed webhooks (each trigger, replays)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.patreon.signing import EVENT_HEADER, SIGNATURE_HEADER, sign
from adapters.patreon.simulator import PatreonSimulator, PatreonSimulatorConfig
from adapters.patreon.sync import sync_connection
from application.context import CommandContext
from application.patreon import PlatformCallFailed
from domain.errors import IllegalState
from projections.fans import FansProjection
from projections.imports import ImportJobsProjection
from tests.support.catching_up import catch_up_to_head
from tests.support.fresh_app import auth_for
from tests.support.imports import expected, summary, upload
from tests.support.settings import settings_for

TOKEN = "patreon-token-" + uuid.uuid4().hex
SECRET = "patreon-webhook-secret-" + uuid.uuid4().hex


class Stack:
    def __init__(
        self, container: bootstrap.Container, http: httpx.AsyncClient, sim: PatreonSimulator
    ) -> None:
        self.container, self.http, self.sim = container, http, sim
        self.tenant = f"creator-{uuid.uuid4().hex[:8]}"
        self.headers: dict[str, str] = {}

    async def connect(self, **fields: Any) -> dict[str, Any]:
        body = {
            "platform": "patreon",
            "accessToken": TOKEN,
            "campaignId": self.sim.state.config.campaign_id,
            "webhookSecret": SECRET,
            "apiUrl": self.sim.url,
            **fields,
        }
        answer = await self.http.post("/api/platforms/connections", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def ctx(self) -> CommandContext:
        return CommandContext(tenant=self.tenant, actor="test", correlation_id="c")

    async def fans(self) -> list[Any]:
        await catch_up_to_head(self.container, [FansProjection()])
        return list(
            await self.container.pool.fetch(
                "SELECT fan_id, platform, platform_id, name, email, value_cents, tags"
                " FROM fans WHERE tenant_id = $1 ORDER BY fan_id",
                self.tenant,
            )
        )


@pytest.fixture
async def stack(fresh_database_url: str) -> AsyncIterator[Stack]:
    config = PatreonSimulatorConfig(access_token=TOKEN, members=130, page_size=50)
    async with PatreonSimulator(config) as sim:
        settings = settings_for(fresh_database_url, platform_api_urls=(sim.url,))
        container = await bootstrap.build(settings)
        try:
            transport = httpx.ASGITransport(app=create_app(container=container))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                built = Stack(container, http, sim)
                built.headers = await auth_for(container, built.tenant)
                yield built
        finally:
            await container.close()


async def test_a_connection_is_listed_with_its_health_and_its_secrets_never_answered(
    stack: Stack,
) -> None:
    made = await stack.connect()
    assert made["platform"] == "patreon"
    assert made["health"] == "unknown"
    assert made["hasWebhookSecret"] is True
    assert made["webhookPath"] == f"/api/patreon/webhooks/{made['id']}"
    listed = await stack.http.get("/api/platforms/connections", headers=stack.headers)
    assert [c["id"] for c in listed.json()["connections"]] == [made["id"]]
    for answer in (str(made), listed.text):
        assert TOKEN not in answer
        assert SECRET not in answer
    stranger = await auth_for(stack.container, "someone-else")
    gone = await stack.http.delete(f"/api/platforms/connections/{made['id']}", headers=stranger)
    assert gone.status_code == 404
    removed = await stack.http.delete(
        f"/api/platforms/connections/{made['id']}", headers=stack.headers
    )
    assert removed.status_code == 204
    listed = await stack.http.get("/api/platforms/connections", headers=stack.headers)
    assert listed.json()["connections"] == []


async def test_an_api_url_the_deployment_does_not_list_is_refused(stack: Stack) -> None:
    answer = await stack.http.post(
        "/api/platforms/connections",
        json={
            "platform": "patreon",
            "accessToken": TOKEN,
            "campaignId": "1",
            "apiUrl": "http://169.254.169.254",
        },
        headers=stack.headers,
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "apiUrl"


async def test_a_patreon_connection_without_a_campaign_is_refused(stack: Stack) -> None:
    answer = await stack.http.post(
        "/api/platforms/connections",
        json={"platform": "patreon", "accessToken": TOKEN},
        headers=stack.headers,
    )
    assert answer.status_code == 422
    assert answer.json()["field"] == "campaignId"


async def test_a_sync_pages_through_every_member_and_a_second_sync_changes_only_what_changed(
    stack: Stack,
) -> None:
    made = await stack.connect()
    path = f"/api/platforms/connections/{made['id']}/sync"
    first = await stack.http.post(path, headers=stack.headers)
    assert first.status_code == 200, first.text
    assert first.json()["members"] == 130
    assert first.json()["inserted"] == 130
    fans = await stack.fans()
    assert len(fans) == 130
    assert {fan["platform"] for fan in fans} == {"patreon"}
    assert len({fan["platform_id"] for fan in fans}) == 130
    member = stack.sim.state.member(5)
    fan = next(f for f in fans if f["platform_id"] == stack.sim.state.user_id(5))
    assert fan["name"] == "Patron 5"
    assert fan["email"] == "patron5@example.com"
    assert fan["value_cents"] == member["attributes"]["lifetime_support_cents"]
    # The tier "Gold ($25)" as a tag, and the patron status.
    assert fan["tags"] == ["gold 25", "active_patron"]

    stack.sim.state.change(5, full_name="Patron Seven", lifetime_support_cents=123_400)
    second = await stack.http.post(path, headers=stack.headers)
    assert second.json()["inserted"] == 0
    assert second.json()["updated"] == 1
    fans = await stack.fans()
    assert len(fans) == 130
    fan = next(f for f in fans if f["platform_id"] == stack.sim.state.user_id(5))
    assert (fan["name"], fan["value_cents"]) == ("Patron Seven", 123_400)
    listed = await stack.http.get("/api/platforms/connections", headers=stack.headers)
    health = listed.json()["connections"][0]
    assert health["health"] == "ok"
    assert health["lastSyncAt"] is not None


async def test_a_sync_interrupted_by_patreon_resumes_after_its_last_page_and_doubles_nothing(
    stack: Stack,
) -> None:
    made = await stack.connect()
    connection = await stack.container.connections.get(stack.tenant, made["id"])
    assert connection is not None
    stack.sim.state.fail(from_page=3)  # pages 1 and 2 commit, then Patreon fails
    with pytest.raises(PlatformCallFailed):
        await sync_connection(stack.container, connection, stack.ctx(), page_size=20)
    listed = await stack.http.get("/api/platforms/connections", headers=stack.headers)
    health = listed.json()["connections"][0]
    assert health["health"] == "failing"
    assert "HTTP 500" in health["healthReason"]
    assert len(await stack.fans()) == 40
    await catch_up_to_head(stack.container, [ImportJobsProjection()])
    jobs = await stack.http.get("/api/onlyfans/import/jobs", headers=stack.headers)
    [job] = jobs.json()["jobs"]
    assert job["status"] == "failed"

    stack.sim.state.fail(from_page=None)
    before = stack.sim.state.page_requests
    resumed = await sync_connection(stack.container, connection, stack.ctx(), page_size=20)
    assert resumed.resumed
    assert resumed.members == 90
    # 130 members in pages of 20: 7 pages, of which the first 2 were committed before.
    assert stack.sim.state.page_requests - before == 5
    fans = await stack.fans()
    assert len(fans) == 130
    assert len({fan["platform_id"] for fan in fans}) == 130


async def test_a_sync_killed_between_pages_resumes_without_doubling(stack: Stack) -> None:
    made = await stack.connect()
    connection = await stack.container.connections.get(stack.tenant, made["id"])
    assert connection is not None
    pages_seen = asyncio.Event()

    async def stop_after_third(checkpoint: Any) -> None:
        if checkpoint.pages == 3:
            pages_seen.set()
            await asyncio.Event().wait()  # hold here until cancelled, like a killed process

    task = asyncio.create_task(
        sync_connection(
            stack.container, connection, stack.ctx(), page_size=25, on_page=stop_after_third
        )
    )
    await asyncio.wait_for(pages_seen.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    resumed = await sync_connection(stack.container, connection, stack.ctx(), page_size=25)
    assert resumed.resumed
    assert resumed.inserted == 130
    fans = await stack.fans()
    assert len(fans) == 130
    assert len({fan["platform_id"] for fan in fans}) == 130


def _signed(body: bytes, trigger: str, secret: str = SECRET) -> dict[str, str]:
    return {EVENT_HEADER: trigger, SIGNATURE_HEADER: sign(secret, body)}


async def test_webhooks_without_a_good_signature_are_refused_whatever_their_body(
    stack: Stack,
) -> None:
    made = await stack.connect()
    url = f"/api/patreon/webhooks/{made['id']}"
    body = stack.sim.state.document(1)
    for headers in (
        {EVENT_HEADER: "members:create"},
        _signed(body, "members:create", secret="not-the-secret"),
        {EVENT_HEADER: "members:create", SIGNATURE_HEADER: "zz" * 16},
    ):
        answer = await stack.http.post(url, content=body, headers=headers)
        assert answer.status_code == 401, answer.text
    unknown = await stack.http.post(
        f"/api/patreon/webhooks/{uuid.uuid4()}",
        content=body,
        headers=_signed(body, "members:create"),
    )
    assert unknown.status_code == 401
    garbage = b"{not json"
    answer = await stack.http.post(url, content=garbage, headers=_signed(garbage, "members:create"))
    assert answer.status_code == 400
    answer = await stack.http.post(url, content=body, headers=_signed(body, "posts:publish"))
    assert answer.status_code == 400
    assert await stack.fans() == []


async def test_each_trigger_changes_the_fan_once_and_a_replay_changes_nothing(
    stack: Stack,
) -> None:
    made = await stack.connect()
    url = f"/api/patreon/webhooks/{made['id']}"
    state = stack.sim.state

    async def post(trigger: str, index: int = 3) -> httpx.Response:
        body = state.document(index)
        return await stack.http.post(url, content=body, headers=_signed(body, trigger))

    created = await post("members:create")
    assert created.status_code == 200, created.text
    fan_id = created.json()["fanId"]
    assert isinstance(fan_id, int)
    assert (await post("members:create")).status_code == 409

    state.change(3, full_name="Renamed Patron")
    updated = await post("members:update")
    assert updated.json()["fanId"] == fan_id

    pledge = state.member(3)["attributes"]["currently_entitled_amount_cents"]
    pledged = await post("members:pledge:create")
    assert pledged.json() == {
        "status": "processed",
        "trigger": "members:pledge:create",
        "fanId": fan_id,
        "revenueCents": pledge,
    }
    assert (await post("members:pledge:create")).status_code == 409
    fans = await stack.fans()
    assert len(fans) == 1
    assert (fans[0]["name"], fans[0]["value_cents"]) == ("Renamed Patron", pledge)

    state.change(3, currently_entitled_amount_cents=2_000)
    assert (await post("members:pledge:update")).json()["revenueCents"] == 2_000
    assert (await post("members:pledge:delete")).status_code == 200
    fans = await stack.fans()
    assert fans[0]["value_cents"] == pledge + 2_000
    assert "former_patron" in fans[0]["tags"]
    assert (await post("members:delete")).status_code == 200
    fans = await stack.fans()
    assert len(fans) == 1
    assert "removed member" in fans[0]["tags"]


async def test_a_webhook_then_a_sync_name_the_same_fan(stack: Stack) -> None:
    made = await stack.connect()
    body = stack.sim.state.document(4)
    answer = await stack.http.post(
        f"/api/patreon/webhooks/{made['id']}",
        content=body,
        headers=_signed(body, "members:create"),
    )
    assert answer.status_code == 200
    synced = await stack.http.post(
        f"/api/platforms/connections/{made['id']}/sync", headers=stack.headers
    )
    assert synced.json()["inserted"] == 129
    fans = await stack.fans()
    assert len(fans) == 130
    assert len({fan["platform_id"] for fan in fans}) == 130


async def test_credentials_appear_in_no_answer_log_metric_or_table(
    stack: Stack, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[str] = []
    made = await stack.connect()
    answers.append(str(made))
    wrong_token = "refused-token-" + uuid.uuid4().hex
    refused = await stack.connect(accessToken=wrong_token)
    for connection_id in (made["id"], refused["id"]):
        synced = await stack.http.post(
            f"/api/platforms/connections/{connection_id}/sync", headers=stack.headers
        )
        answers.append(synced.text)
    assert "refused the access token" in answers[-1]
    body = stack.sim.state.document(2)
    for headers in (_signed(body, "members:pledge:create"), {EVENT_HEADER: "members:create"}):
        hook = await stack.http.post(
            f"/api/patreon/webhooks/{made['id']}", content=body, headers=headers
        )
        answers.append(hook.text)
    answers.append((await stack.http.get("/api/platforms/connections", headers=stack.headers)).text)
    answers.append((await stack.http.get("/metrics")).text)
    monitoring = await stack.http.get("/api/monitoring/platforms", headers=stack.headers)
    assert monitoring.status_code == 200
    answers.append(monitoring.text)
    captured = capsys.readouterr()
    tables = await stack.container.pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    stored = [
        str(row[0])
        for table in tables
        for row in await stack.container.pool.fetch(f'SELECT t::text FROM "{table["tablename"]}" t')
    ]
    assert any("FanPurchaseRecorded" in text for text in stored)  # the webhook was applied
    seen = "\n".join([*answers, captured.out, captured.err, caplog.text, *stored])
    for secret in (TOKEN, SECRET, wrong_token):
        assert secret not in seen


async def test_monitoring_shows_each_connection_with_the_reason_its_last_call_failed(
    stack: Stack,
) -> None:
    made = await stack.connect(accessToken="not-the-simulators-token")
    synced = await stack.http.post(
        f"/api/platforms/connections/{made['id']}/sync", headers=stack.headers
    )
    assert synced.status_code == 502
    platforms = await stack.http.get("/api/monitoring/platforms", headers=stack.headers)
    assert platforms.status_code == 200
    assert platforms.json()["status"] == "degraded"
    [component] = platforms.json()["platforms"]
    assert component["connectionId"] == made["id"]
    assert component["status"] == "degraded"
    assert component["reason"] == "Patreon refused the access token (HTTP 401)"
    onlyfans = await stack.http.get("/api/monitoring/onlyfans", headers=stack.headers)
    body = onlyfans.json()
    assert {"database", "sqs", "rateLimiter", "projections"} <= set(body["components"])
    assert body["components"]["platforms"] == [component]


async def test_patreons_csv_export_and_the_api_sync_find_the_same_fans(stack: Stack) -> None:
    rows = [
        f"Patron {i},p{i}@example.com,Active patron,10.00,Bronze,2022-02-0{i + 1},{700_000 + i}"
        for i in range(3)
    ]
    csv = "\n".join(
        ["Name,Email,Patron Status,Lifetime Amount,Tier,Patronage Since Date,User ID", *rows]
    )
    imported = await upload(stack.http, stack.headers, csv.encode(), name="patreon.csv")
    assert summary(imported) == expected(3, 3)
    fans = await stack.fans()
    assert [fan["platform"] for fan in fans] == ["patreon"] * 3
    made = await stack.connect()
    synced = await stack.http.post(
        f"/api/platforms/connections/{made['id']}/sync", headers=stack.headers
    )
    assert synced.json()["inserted"] == 127
    assert len(await stack.fans()) == 130


async def test_two_syncs_of_one_connection_at_once_double_nothing(stack: Stack) -> None:
    made = await stack.connect()
    connection = await stack.container.connections.get(stack.tenant, made["id"])
    assert connection is not None
    outcomes = await asyncio.gather(
        *(
            sync_connection(stack.container, connection, stack.ctx(), page_size=10)
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert finished, outcomes
    assert all(isinstance(o, IllegalState) for o in refused), refused
    fans = await stack.fans()
    assert len(fans) == 130
    assert len({fan["platform_id"] for fan in fans}) == 130


async def test_a_member_unknown_here_deleted_or_with_values_a_fan_cannot_hold_changes_nothing(
    stack: Stack,
) -> None:
    made = await stack.connect()
    url = f"/api/patreon/webhooks/{made['id']}"
    body = stack.sim.state.document(9)
    deleted = await stack.http.post(url, content=body, headers=_signed(body, "members:delete"))
    assert deleted.json()["fanId"] is None
    stack.sim.state.change(10, email="not an email")
    body = stack.sim.state.document(10)
    refused = await stack.http.post(url, content=body, headers=_signed(body, "members:create"))
    # Acknowledged (Patreon would otherwise retry it for ever), and applied once: a replay is 409.
    assert refused.json()["fanId"] is None
    again = await stack.http.post(url, content=body, headers=_signed(body, "members:create"))
    assert again.status_code == 409
    assert await stack.fans() == []
