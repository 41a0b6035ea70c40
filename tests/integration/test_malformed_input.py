"""Malformed input of any shape is a 4xx problem+json that changes nothing: JSON nested too
deep on every route that reads JSON, NUL in the path or any query parameter, integers beyond
bigint in cursors and segments. Each was a 500 once (issue 13, finding 5)."""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from litestar.routes import HTTPRoute

from adapters.bootstrap import Container
from adapters.http.app import create_app
from application.context import CommandContext
from application.streams import save
from domain.campaign import Campaign
from tests.support.imports import assert_problem

pytestmark = pytest.mark.timeout(60)

Headers = dict[str, str]
Count = Callable[[], Awaitable[int]]
DEEP = {
    "arrays": b"[" * 1_000 + b"]" * 1_000,
    "objects": b'{"a":' * 1_000 + b"1" + b"}" * 1_000,
}


def json_routes() -> list[tuple[str, str]]:
    """(method, path) of every route whose handler reads a JSON body, path ids set to 1."""
    app = create_app(settings=_settings())
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if "data" not in handler.parsed_fn_signature.parameters:
                continue
            path = re.sub(r"\{(\w+):int\}", "1", route.path)
            path = re.sub(r"\{(\w+):str\}", "x", path)
            found += [(method, path) for method in sorted(handler.http_methods)]
    return found


def _settings() -> Any:
    from tests.support.settings import settings_for

    return settings_for("postgresql://unused/unused")


JSON_ROUTES = json_routes()


def test_the_walk_finds_every_json_route() -> None:
    assert ("POST", "/api/crm/fans") in JSON_ROUTES
    assert ("PATCH", "/api/crm/campaigns/1") in JSON_ROUTES
    assert len(JSON_ROUTES) >= 9


@pytest.mark.parametrize("shape", list(DEEP))
@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
async def test_json_nested_a_thousand_deep_is_400_on_every_json_route(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    method: str,
    path: str,
    shape: str,
) -> None:
    response = await http.request(
        method,
        path,
        content=DEEP[shape],
        headers={**auth, "Content-Type": "application/json"},
    )

    assert "nested deeper" in assert_problem(response, 400)["detail"]
    assert await events_of_tenant() == 0


async def test_json_a_little_deep_still_reaches_the_route(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    tags = {"tags": ["vip"]}
    response = await http.post(
        "/api/messages/bulk", json={"content": "Hi", "segment": tags}, headers=auth
    )

    assert response.status_code == 422, response.text  # no fan matches: the domain's answer


NUL_QUERIES = [
    ("GET", "/api/audit/events?streamId=%00", "streamId"),
    ("GET", "/api/crm/campaigns?status=%00", "status"),
    ("GET", "/api/crm/fans?tag=x%00y", "tag"),
    ("POST", "/api/onlyfans/import/csv?resumeJobId=%00", "resumeJobId"),
]


@pytest.mark.parametrize(("method", "url", "field"), NUL_QUERIES)
async def test_a_nul_in_a_query_parameter_is_422_naming_it(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    method: str,
    url: str,
    field: str,
) -> None:
    files = {"file": ("fans.csv", b"handle\nann\n", "text/csv")} if method == "POST" else None
    response = await http.request(method, url, headers=auth, files=files)

    assert assert_problem(response, 422)["field"] == field
    assert await events_of_tenant() == 0


async def test_a_nul_in_the_path_is_422(http: httpx.AsyncClient, auth: Headers) -> None:
    response = await http.get("/api/audit/streams/fan-%00", headers=auth)

    assert assert_problem(response, 422)["field"] == "path"


def cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


TOO_BIG, TOO_SMALL = 99_999_999_999_999_999_999, -(2**63) - 1
BAD_CURSORS = [
    ("/api/crm/campaigns", cursor(TOO_BIG)),
    ("/api/crm/campaigns", cursor(TOO_SMALL)),
    ("/api/onlyfans/import/jobs", cursor("2026-01-01T00:00:00Z", "job\x00")),
    ("/api/onlyfans/import/jobs", cursor("0001-01-01T00:00:00+01:00", "job")),
]
# Cursors that some read models used to check themselves, before decode_cursor did for all.
CHECKED_BEFORE = [
    ("/api/crm/fans", cursor(TOO_BIG, 1)),
    ("/api/audit/events", cursor(1, TOO_BIG)),
    ("/api/analytics/fans/revenue", cursor("2026-01-01", TOO_BIG)),
    ("/api/analytics/campaigns/revenue", cursor("2026-01-01", TOO_SMALL)),
    ("/api/crm/conversations", cursor("2026-01-01T00:00:00Z", TOO_BIG)),
]


@pytest.mark.parametrize(("path", "value"), BAD_CURSORS + CHECKED_BEFORE)
async def test_a_cursor_beyond_bigint_or_holding_nul_is_422(
    http: httpx.AsyncClient, auth: Headers, path: str, value: str
) -> None:
    response = await http.get(path, params={"cursor": value}, headers=auth)

    assert assert_problem(response, 422)["field"] == "cursor"


@pytest.mark.parametrize("cents", [99_999_999_999_999_999_999, 2**63])
async def test_a_segment_minimum_beyond_bigint_is_refused_on_create_and_on_the_bulk_send(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count, cents: int
) -> None:
    segment = {"minValueCents": cents}
    bulk = await http.post(
        "/api/messages/bulk", json={"content": "Hi", "segment": segment}, headers=auth
    )
    draft = await http.post(
        "/api/crm/campaigns",
        json={"name": "Big", "template": {"content": "Hi"}, "targetAudience": {"segment": segment}},
        headers=auth,
    )

    for response in (bulk, draft):
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await events_of_tenant() == 0


async def test_a_draft_recorded_with_a_minimum_beyond_bigint_is_422_when_launched(
    http: httpx.AsyncClient,
    auth: Headers,
    tenant: str,
    container: Container,
    events_of_tenant: Count,
) -> None:
    # As drafts were recorded before create refused such a minimum: built past create().
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id="c")
    draft = Campaign(
        campaign_id=await container.ids.next_id("campaign"),
        tenant=tenant,
        name="Old draft",
        kind="bulk_message",
        content="Hi",
        attachments=(),
        price_cents=0,
        priority=5,
        recipient_ids=None,
        segment_tags=(),
        segment_min_value_cents=99_999_999_999_999_999_999,
        segment_active_since=None,
        scheduled_at=None,
    )
    await save(container.events, draft, "campaign", ctx)
    before = await events_of_tenant()

    response = await http.patch(
        f"/api/crm/campaigns/{draft.campaign_id}", json={"status": "active"}, headers=auth
    )

    assert assert_problem(response, 422)["field"] == "minValueCents"
    assert await events_of_tenant() == before


async def test_a_correlation_id_with_a_control_character_is_replaced_not_stored(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Count
) -> None:
    headers = {**auth, "X-Correlation-ID": "trace\x01me"}
    response = await http.post("/api/crm/fans", json={"name": "Ctl"}, headers=headers)

    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"].isprintable()
    assert await events_of_tenant() == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/onlyfans/messages/send", {"recipientId": 1, "content": "hi"}),
        ("/api/messages/bulk", {"content": "hi", "recipientIds": [1]}),
        ("/api/crm/fans", {"name": "Nul"}),
    ],
)
@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Correlation-Id"])
async def test_a_nul_in_a_header_is_422_naming_it(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: Count,
    path: str,
    body: dict[str, Any],
    header: str,
) -> None:
    response = await http.post(path, json=body, headers={**auth, header: "a\x00b"})

    assert assert_problem(response, 422)["field"] == header
    assert await events_of_tenant() == 0
