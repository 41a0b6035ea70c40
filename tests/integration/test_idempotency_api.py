"""The Idempotency-Key on every POST (README): the same key and request replays the first
response with no second effect, the same key with another request is 422; a key is freed when
its request failed before its command committed and kept when it committed; keys expire.

Failures are provoked by an event store whose append fails before (or right after) the real
one; expiry by replacing the key store's clock. Nothing here waits on time: the wait for a
first request still running is set to zero where a test needs it over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from adapters.bootstrap import Container
from adapters.http import idempotency
from adapters.http.app import create_app
from adapters.http.idempotency import import_job_id_for, request_digest
from adapters.postgres.idempotency_keys import IdempotencyKeys, holding
from application import fans, messages
from application.context import CommandContext
from application.errors import ConcurrencyError
from domain.errors import IllegalState
from tests.support.imports import IMPORT, assert_problem, expected, summary, upload
from worker.idempotency import delete_expired_keys, run_key_cleanup

pytestmark = pytest.mark.timeout(60)

FANS = "/api/crm/fans"
CONVERSATIONS = "/api/crm/conversations"
CRM_MESSAGES = "/api/crm/messages"
CAMPAIGNS = "/api/crm/campaigns"
SEND = "/api/onlyfans/messages/send"
Headers = dict[str, str]
Count = Callable[[], Awaitable[int]]


def keyed(auth: Headers) -> Headers:
    return {**auth, "Idempotency-Key": f"key-{uuid.uuid4()}"}


@pytest.fixture
def ctx(tenant: str) -> CommandContext:
    return CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry does not wait for the first request with its key: it decides at once."""
    monkeypatch.setattr(idempotency, "WAIT_FOR_FIRST_SECONDS", 0.0)


async def new_fan(http: httpx.AsyncClient, auth: Headers, name: str = "Ann") -> int:
    body = {"name": name, "handle": f"{name.lower()}_{uuid.uuid4().hex[:8]}"}
    response = await http.post(FANS, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


async def fans_named(container: Container, tenant: str) -> int:
    return int(
        await container.pool.fetchval(
            "SELECT count(*) FROM events"
            " WHERE metadata->>'tenant' = $1 AND event_type = 'FanCreated'",
            tenant,
        )
    )


async def assert_once(
    http: httpx.AsyncClient,
    headers: Headers,
    events_of_tenant: Count,
    url: str,
    body: Any = None,
    *,
    other_url: str | None = None,
    other_body: Any = None,
) -> httpx.Response:
    """POST twice with one key: one effect, the first response replayed; then the same key
    with another request (``other_url``/``other_body``): 422, no effect."""
    first = await http.post(url, json=body, headers=headers)
    assert 200 <= first.status_code < 300, first.text
    assert "idempotent-replayed" not in first.headers
    events = await events_of_tenant()

    again = await http.post(url, json=body, headers=headers)

    assert again.status_code == first.status_code, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"].startswith("application/json")
    assert again.json() == first.json()
    assert await events_of_tenant() == events

    other = await http.post(other_url or url, json=other_body, headers=headers)

    assert assert_problem(other, 422)["field"] == "idempotencyKey"
    assert await events_of_tenant() == events
    return first


# --- every POST route -----------------------------------------------------------------------


async def test_creating_a_fan_twice_with_one_key_creates_one_fan_and_replays_the_first(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    tenant: str,
    events_of_tenant: Count,
) -> None:
    headers = keyed(auth)

    first = await assert_once(
        http,
        headers,
        events_of_tenant,
        FANS,
        {"name": "Ann", "valueCents": 5},
        other_body={"name": "Bob"},
    )

    assert first.status_code == 201
    assert await fans_named(container, tenant) == 1
    again = await http.post(FANS, json={"valueCents": 5, "name": "Ann"}, headers=headers)
    assert again.headers["etag"] == first.headers["etag"]


async def test_starting_a_conversation_twice_with_one_key_replays_the_first(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count
) -> None:
    ann, bob = await new_fan(http, auth, "Ann"), await new_fan(http, auth, "Bob")

    first = await assert_once(
        http,
        keyed(auth),
        events_of_tenant,
        CONVERSATIONS,
        {"fanId": ann},
        other_body={"fanId": bob},
    )

    assert first.status_code == 201
    assert first.json()["position"] is not None


async def test_marking_a_message_read_twice_with_one_key_replays_the_first(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    ctx: CommandContext,
    events_of_tenant: Count,
) -> None:
    fan_id = await new_fan(http, auth)
    ids = []
    for text in ("one", "two"):
        sent = await http.post(SEND, json={"recipientId": fan_id, "content": text}, headers=auth)
        assert sent.status_code == 202, sent.text
        message_id = sent.json()["messageId"]
        await messages.record_dispatched(message_id, "normal", ctx, store=container.events)
        await messages.record_sent(message_id, f"of-{text}", ctx, store=container.events)
        ids.append(message_id)

    first = await assert_once(
        http,
        keyed(auth),
        events_of_tenant,
        f"{CRM_MESSAGES}/{ids[0]}/read",
        other_url=f"{CRM_MESSAGES}/{ids[1]}/read",
    )

    assert first.json()["status"] == "read"


async def test_pausing_resuming_and_cancelling_twice_with_one_key_replays_the_first(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, catch_up: Count
) -> None:
    fan_ids = [await new_fan(http, auth, "Ann"), await new_fan(http, auth, "Bob")]
    created = await http.post(
        CAMPAIGNS,
        json={
            "name": "Drip",
            "template": {"content": "Hey"},
            "targetAudience": {"recipientIds": fan_ids},
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    url = f"{CAMPAIGNS}/{created.json()['id']}"
    await _until_projected(http, auth, catch_up, fan_ids)  # the audience is the fans view's
    launched = await http.patch(url, json={"status": "active"}, headers=auth)
    assert launched.json()["status"] == "active", launched.text

    for action, status, other in (
        ("pause", "paused", "cancel"),
        ("resume", "active", "pause"),
        ("cancel", "cancelled", "resume"),
    ):
        first = await assert_once(
            http, keyed(auth), events_of_tenant, f"{url}/{action}", other_url=f"{url}/{other}"
        )
        assert first.json()["status"] == status


async def test_a_retried_import_with_its_key_answers_the_jobs_summary_and_imports_nothing(
    http: httpx.AsyncClient, auth: Headers, tenant: str, events_of_tenant: Count
) -> None:
    headers = keyed(auth)
    content = b"handle,email\nann,ann@example.com\nbob,bob@example.com\n"
    first = await upload(http, headers, content)
    assert summary(first) == expected(2, 2)
    assert "idempotent-replayed" not in first.headers
    assert first.json()["jobId"] == import_job_id_for(tenant, headers["Idempotency-Key"])
    events = await events_of_tenant()

    again = await upload(http, headers, content)

    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await events_of_tenant() == events

    other = await upload(http, headers, content.replace(b"bob", b"cid"))

    assert assert_problem(other, 422)["field"] == "idempotencyKey"
    assert await events_of_tenant() == events


async def test_an_import_cut_off_is_resumed_by_a_retry_with_its_key(
    http: httpx.AsyncClient, container: Container, auth: Headers
) -> None:
    headers = keyed(auth)
    content = b"handle\r\n" + b"".join(b"fan%d\r\n" % i for i in range(5_000))

    async def without_length() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="f.csv"\r\n\r\n'
        for start in range(0, len(content), 4096):
            yield content[start : start + 4096]
        yield b"\r\n--b--\r\n"

    async with _app_with(container, import_max_bytes=16_384, import_batch_size=500) as limited:
        cut = assert_problem(
            await limited.post(
                IMPORT,
                content=without_length(),
                headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
            ),
            413,
        )
    assert cut["summary"]["successfulInserts"] > 0

    resumed = await upload(http, headers, content)

    assert resumed.json()["jobId"] == cut["jobId"]
    assert "idempotent-replayed" not in resumed.headers
    assert summary(resumed) == expected(5_000, 5_000)


# --- failures: freed when nothing committed, kept when something did --------------------------


def _failing_store(
    container: Container,
    patched: pytest.MonkeyPatch,
    *,
    after_commit: bool,
    error: type[Exception] = RuntimeError,
) -> None:
    """Every append of the store fails with ``error``: before it reaches the database, or
    just after its commit (as a connection lost while the COMMIT's answer was on its way)."""
    for name in ("append", "append_all"):
        real = getattr(container.events, name)

        async def failing(*args: Any, _real: Any = real, **kwargs: Any) -> list[int]:
            if not after_commit:
                raise RuntimeError("the database went away")
            await _real(*args, **kwargs)
            raise error("the connection dropped after the commit")

        patched.setattr(container.events, name, failing)


async def new_message_body(http: httpx.AsyncClient, auth: Headers) -> dict[str, Any]:
    return {"recipientId": await new_fan(http, auth), "content": "Once only"}


async def new_fan_body(http: httpx.AsyncClient, auth: Headers) -> dict[str, Any]:
    return {"name": "Ann"}


ROUTES = {"send": (SEND, new_message_body), "create a fan": (FANS, new_fan_body)}


@pytest.mark.parametrize("route", ROUTES)
async def test_a_request_that_failed_before_committing_frees_its_key(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    events_of_tenant: Count,
    monkeypatch: pytest.MonkeyPatch,
    no_wait: None,
    route: str,
) -> None:
    url, make_body = ROUTES[route]
    headers, body = keyed(auth), await make_body(http, auth)
    before = await events_of_tenant()
    with monkeypatch.context() as patched:
        _failing_store(container, patched, after_commit=False)
        failed = await http.post(url, json=body, headers=headers)
    assert failed.status_code == 500, failed.text
    assert await events_of_tenant() == before

    retried = await http.post(url, json=body, headers=headers)

    assert 200 <= retried.status_code < 300, retried.text
    assert "idempotent-replayed" not in retried.headers
    again = await http.post(url, json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == retried.json()


# Kept whatever the error: a 500, or a refusal (4xx) raised after the commit.
@pytest.mark.parametrize(
    ("route", "error", "status"),
    [("create a fan", RuntimeError, 500), ("send", IllegalState, 409)],
)
async def test_a_request_that_failed_after_committing_keeps_its_key(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    events_of_tenant: Count,
    monkeypatch: pytest.MonkeyPatch,
    no_wait: None,
    route: str,
    error: type[Exception],
    status: int,
) -> None:
    url, make_body = ROUTES[route]
    headers, body = keyed(auth), await make_body(http, auth)
    before = await events_of_tenant()
    with monkeypatch.context() as patched:
        _failing_store(container, patched, after_commit=True, error=error)
        failed = await http.post(url, json=body, headers=headers)
    assert failed.status_code == status, failed.text
    committed = await events_of_tenant()
    assert committed > before

    retried = await http.post(url, json=body, headers=headers)

    assert "outcome is unknown" in assert_problem(retried, 409)["detail"]
    assert await events_of_tenant() == committed


async def test_a_key_whose_holder_died_before_committing_is_taken_over_and_the_holder_is_shut_out(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    tenant: str,
    ctx: CommandContext,
    no_wait: None,
) -> None:
    headers = keyed(auth)
    body = {"name": "Ann"}
    digest = request_digest("POST", FANS, msgspec.json.encode(body))
    # As if a process reserved the key and died (or hangs) before its command committed.
    stale = await container.idempotency.reserve(tenant, headers["Idempotency-Key"], digest)
    assert stale is not None

    retried = await http.post(FANS, json=body, headers=headers)

    assert retried.status_code == 201, retried.text
    # The first holder, should it come back, can append nothing under the key it lost.
    with holding(stale), pytest.raises(ConcurrencyError, match="taken over"):
        await fans.create_fan(
            fans.CreateFan(name="Ann"), ctx, store=container.events, ids=container.ids
        )
    assert await fans_named(container, tenant) == 1


# --- expiry and cleanup ------------------------------------------------------------------------


async def test_an_expired_key_may_be_used_again(
    http: httpx.AsyncClient,
    auth: Headers,
    container: Container,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = keyed(auth)
    assert (await http.post(FANS, json={"name": "Ann"}, headers=headers)).status_code == 201
    later = datetime.now(UTC) + container.idempotency.ttl + timedelta(seconds=1)
    monkeypatch.setattr(container.idempotency, "now", lambda: later)

    reused = await http.post(FANS, json={"name": "Bob"}, headers=headers)

    assert reused.status_code == 201, reused.text
    assert reused.json()["fan"]["name"] == "Bob"
    assert await fans_named(container, tenant) == 2


async def test_expired_keys_are_deleted_in_batches_and_live_ones_kept(
    container: Container, tenant: str
) -> None:
    now = [datetime.now(UTC)]
    keys = IdempotencyKeys(container.pool, ttl_seconds=60, now=lambda: now[0])
    for name in ("a", "b", "c"):
        assert await keys.reserve(tenant, name, b"digest") is not None
    now[0] += timedelta(seconds=50)
    assert await keys.reserve(tenant, "live", b"digest") is not None
    now[0] += timedelta(seconds=11)

    deleted = await delete_expired_keys(keys, batch=2)

    assert deleted >= 3
    left = await container.pool.fetch(
        "SELECT key FROM idempotency_keys WHERE tenant_id = $1", tenant
    )
    assert [row["key"] for row in left] == ["live"]


async def _until_projected(
    http: httpx.AsyncClient, auth: Headers, catch_up: Count, fan_ids: list[int]
) -> None:
    """Catch the projectors up until the fans view has these fans: a transaction open
    elsewhere on the database server holds the log's readers back for a while."""
    deadline = time.monotonic() + 30
    while True:
        await catch_up()
        found = [(await http.get(f"{FANS}/{i}", headers=auth)).status_code for i in fan_ids]
        if found == [200] * len(fan_ids):
            return
        assert time.monotonic() < deadline, f"the fans view never caught up: {found}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _app_with(container: Container, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    changed = Container(
        **{**vars(container), "settings": msgspec.structs.replace(container.settings, **settings)}
    )
    transport = httpx.ASGITransport(app=create_app(container=changed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_the_cleanup_loop_deletes_expired_keys_until_stopped(
    container: Container, tenant: str
) -> None:
    now = [datetime.now(UTC)]
    keys = IdempotencyKeys(container.pool, ttl_seconds=60, now=lambda: now[0])
    assert await keys.reserve(tenant, "old", b"digest") is not None
    now[0] += timedelta(seconds=61)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_key_cleanup(keys, stop, every=0.01))
    try:
        deadline = time.monotonic() + 10
        while await container.pool.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant
        ):
            assert time.monotonic() < deadline, "the expired key was never deleted"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)


class _NoKeys:
    """A key store that must not be asked: a request without the header never reaches it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"idempotency_keys.{name} used by a request without a key")


async def test_a_request_without_a_key_never_touches_the_key_store(
    http: httpx.AsyncClient, auth: Headers, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container, "idempotency", _NoKeys())

    created = await http.post(FANS, json={"name": "Ann"}, headers=auth)
    sent = await http.post(
        SEND, json={"recipientId": created.json()["fan"]["id"], "content": "Hi"}, headers=auth
    )

    assert created.status_code == 201, created.text
    assert sent.status_code == 202, sent.text
