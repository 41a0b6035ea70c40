"""A client reads its own writes with no minPosition, on any API process; a command takes a
fan answered 201 as a recipient at once, whatever the read model has applied.

Where a read must wait for the projectors, they run concurrently in the background (as
`crm worker projections` does), never in the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import msgspec

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from projections.runner import ProjectionRunner
from tests.support.settings import TEST_MASTER_KEY, settings_for

FANS = "/api/crm/fans"
BULK = "/api/messages/bulk"
CAMPAIGNS = "/api/crm/campaigns"
Headers = dict[str, str]
# Generous: other databases on a shared server may hold back what the projectors can read
# (the log is read below the oldest running transaction of the whole server).
PATIENT_SECONDS = 60.0
API_NAME = "ryw-test-api"


@contextlib.asynccontextmanager
async def projectors_running(container: bootstrap.Container) -> AsyncIterator[None]:
    """The core projectors following the log in the background, as their worker runs them."""
    stop = asyncio.Event()
    runners = [
        ProjectionRunner(container.projection_store, projection, poll_interval=0.05)
        for projection in bootstrap.core_projections()
    ]
    tasks = [asyncio.create_task(runner.run(stop)) for runner in runners]
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def app_with(
    container: bootstrap.Container, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    changed = dataclasses.replace(
        container, settings=msgspec.structs.replace(container.settings, **settings)
    )
    transport = httpx.ASGITransport(app=create_app(container=changed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def key_for(container: bootstrap.Container, tenant: str) -> Headers:
    key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
    return {"Authorization": f"Bearer {key}"}


async def new_fan(http: httpx.AsyncClient, auth: Headers, name: str) -> dict[str, Any]:
    response = await http.post(FANS, json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    return dict(response.json()["fan"])


# --- reads -----------------------------------------------------------------------------------


async def test_a_fan_is_read_and_listed_right_after_its_201_without_a_position(
    container: bootstrap.Container, auth: Headers
) -> None:
    async with (
        app_with(container, read_your_writes_timeout=PATIENT_SECONDS) as http,
        projectors_running(container),
    ):
        for n in range(5):
            fan = await new_fan(http, auth, f"Fresh {n}")
            got = await http.get(f"{FANS}/{fan['id']}", headers=auth)
            listed = await http.get(FANS, headers=auth)

            assert got.status_code == 200, got.text
            assert got.json() == {"fan": fan}
            assert listed.status_code == 200, listed.text
            assert listed.json()["fans"][0] == fan


async def test_a_read_after_a_write_of_another_view_waits_for_its_own_view_to_pass_it(
    container: bootstrap.Container, auth: Headers
) -> None:
    """A message sent is no fans event; the fans view must still have passed it in the log
    before the key's next fans read, and so the fan updated before it shows."""
    async with app_with(container, read_your_writes_timeout=PATIENT_SECONDS) as http:
        async with projectors_running(container):
            fan = await new_fan(http, auth, "Sender")
            assert (await http.get(f"{FANS}/{fan['id']}", headers=auth)).status_code == 200
        renamed = await http.patch(f"{FANS}/{fan['id']}", json={"name": "Renamed"}, headers=auth)
        assert renamed.status_code == 200, renamed.text
        sent = await http.post(
            "/api/onlyfans/messages/send",
            json={"recipientId": fan["id"], "content": "hi"},
            headers=auth,
        )
        assert sent.status_code == 202, sent.text

        async with projectors_running(container):
            got = await http.get(f"{FANS}/{fan['id']}", headers=auth)
            message = await http.get(f"/api/crm/messages/{sent.json()['messageId']}", headers=auth)

    assert got.status_code == 200, got.text
    assert got.json()["fan"]["name"] == "Renamed"
    assert message.status_code == 200, message.text


async def test_a_key_waits_for_its_own_writes_and_not_for_another_keys(
    container: bootstrap.Container, tenant: str, auth: Headers
) -> None:
    """No projector runs: the writer's read runs out its wait (503), while another key of the
    same account, which wrote nothing, reads the view as it stands at once."""
    reader = await key_for(container, tenant)
    async with app_with(container, read_your_writes_timeout=0.3) as http:
        fan = await new_fan(http, auth, "Unseen")

        other = await http.get(FANS, headers=reader)
        own = await http.get(f"{FANS}/{fan['id']}", headers=auth)

    # Had it waited for the writer's fan, it would have run out its wait too (503).
    assert other.status_code == 200, other.text
    assert fan["id"] not in [listed["id"] for listed in other.json()["fans"]]
    assert own.status_code == 503, own.text
    assert own.headers["content-type"].startswith("application/problem+json")
    assert own.json()["type"].endswith("/projection-lagging")


async def test_a_key_that_never_wrote_reads_at_once(
    container: bootstrap.Container, tenant: str
) -> None:
    reader = await key_for(container, tenant)
    async with app_with(container, read_your_writes_timeout=0.3) as http:
        response = await http.get(FANS, headers=reader)
    assert response.status_code == 200, response.text
    assert response.json()["fans"] == []


# --- commands --------------------------------------------------------------------------------


async def test_a_bulk_send_right_after_creating_fans_takes_them_all_and_refuses_only_strangers(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers
) -> None:
    """No projector has run: the fans view holds none of them."""
    fans = [(await new_fan(http, auth, f"New {n}"))["id"] for n in range(3)]
    strangers = [(await new_fan(http, other_auth, "Someone else's"))["id"], 10**15]

    launched = await http.post(
        BULK, json={"recipientIds": [*fans, *strangers], "content": "hey {{name}}"}, headers=auth
    )

    assert launched.status_code == 202, launched.text
    body = launched.json()
    # Every id asked for: the three queued and the two refused.
    assert (body["totalRecipients"], body["queued"], body["failed"]) == (5, 3, 2), body
    assert sorted(failure["recipientId"] for failure in body["failures"]) == sorted(strangers)


async def test_a_bulk_send_to_ids_that_are_no_fans_is_still_refused(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers
) -> None:
    stranger = (await new_fan(http, other_auth, "Not yours"))["id"]
    deleted = (await new_fan(http, auth, "Gone"))["id"]
    assert (await http.delete(f"{FANS}/{deleted}", headers=auth)).status_code == 200

    refused = await http.post(
        BULK, json={"recipientIds": [stranger, deleted, 10**15], "content": "hi"}, headers=auth
    )

    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert sorted(error["recipientId"] for error in errors) == sorted([stranger, deleted, 10**15])


async def test_a_campaign_launched_right_after_creating_its_fans_counts_them_all(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    fans = [(await new_fan(http, auth, f"Audience {n}"))["id"] for n in range(3)]

    created = await http.post(
        CAMPAIGNS,
        json={
            "name": "launch now",
            "template": {"content": "hello"},
            "targetAudience": {"recipientIds": fans},
            "status": "active",
        },
        headers=auth,
    )

    assert created.status_code == 202, created.text
    assert created.json()["totalRecipients"] == 3
    assert created.json()["failures"] == []


# --- several API processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def crm_serve(database_url: str, workers: int) -> AsyncIterator[str]:
    """`crm serve --workers N` in its own process group, until its /health answers."""
    port = free_port()
    env = {
        **os.environ,
        # Named, to tell its connections from the test's own (_serving_processes).
        # The embedded server's URL already has a query (?host=<its socket folder>).
        "DATABASE_URL": f"{database_url}{'&' if '?' in database_url else '?'}"
        f"application_name={API_NAME}",
        "CRM_MASTER_KEY": TEST_MASTER_KEY,
        "CRM_READ_YOUR_WRITES_TIMEOUT": str(PATIENT_SECONDS),
        "CRM_POOL_MIN_SIZE": "1",
        # One connection per process: each connection that served is another process.
        "CRM_POOL_MAX_SIZE": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60), httpx.AsyncClient(base_url=url) as probe:
            while True:
                assert process.returncode is None, "crm serve exited"
                with contextlib.suppress(httpx.TransportError):
                    if (await probe.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        if process.returncode is None:
            os.killpg(process.pid, 15)
        async with asyncio.timeout(30):
            await process.wait()


async def test_four_api_processes_each_read_a_keys_writes_made_through_the_others(
    fresh_database_url: str, tenant: str
) -> None:
    container = await bootstrap.build(
        settings_for(fresh_database_url, pool_min_size=1, pool_max_size=10)
    )
    try:
        auth = await key_for(container, tenant)
        async with (
            crm_serve(fresh_database_url, workers=4) as url,
            projectors_running(container),
            # A connection per request: the kernel hands each to any of the four processes.
            httpx.AsyncClient(
                base_url=url, limits=httpx.Limits(max_keepalive_connections=0), timeout=90
            ) as http,
        ):
            started = await container.pool.fetchval("SELECT now()")
            created = []
            # Until two processes have served (a process still starting takes none: the
            # kernel hands connections to those accepting), and at least a dozen writes.
            serving = 0
            n = 0
            while n < 12 or (serving <= 1 and n < 300):
                n += 1
                fan = await new_fan(http, auth, f"Spread {n}")
                created.append(fan)
                got = await http.get(f"{FANS}/{fan['id']}", headers=auth)
                assert got.status_code == 200, got.text
                assert got.json() == {"fan": fan}
                listed = await http.get(FANS, headers=auth)
                assert listed.status_code == 200, listed.text
                assert [f["id"] for f in listed.json()["fans"]] == [
                    f["id"] for f in reversed(created)
                ][:50]
                serving = await _serving_processes(fresh_database_url, started)
    finally:
        await container.close()
    assert serving > 1, "the requests never reached more than one API process"


async def _serving_processes(database_url: str, since: datetime) -> int:
    """How many API processes ran a query since ``since`` (each holds one pooled connection;
    their LISTEN connections stay idle since start-up)."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = $1"
                " AND state_change > $2",
                API_NAME,
                since,
            )
        )
    finally:
        await conn.close()
