"""/api/crm/fans over HTTP, against the real app and a real Postgres.

The projector does not run in the background here: a test that wants to see its commands in
the read model calls ``catch_up`` (which applies every test's events in the shared database).
Every test works in a tenant of its own, so what it lists and counts is only its own.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest

from adapters.bootstrap import Container
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key

FANS = "/api/crm/fans"
PROBLEM_JSON = "application/problem+json"

Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]
EventCount = Callable[[], Awaitable[int]]


# --- fixtures and helpers -------------------------------------------------------------------


@asynccontextmanager
async def _client_for(container: Container, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An app over the shared database and pool, with some settings changed."""
    changed = dataclasses.replace(
        container, settings=msgspec.structs.replace(container.settings, **settings)
    )
    transport = httpx.ASGITransport(app=create_app(container=changed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def impatient_http(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a read-your-writes wait of 0.2 s instead of 2 s."""
    async with _client_for(container, read_your_writes_timeout=0.2) as client:
        yield client


@pytest.fixture
async def small_body_http(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The app refusing bodies over 256 bytes."""
    async with _client_for(container, max_body_bytes=256) as client:
        yield client


async def create(http: httpx.AsyncClient, auth: Headers, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Ann")
    response = await http.post(FANS, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def list_all(http: httpx.AsyncClient, auth: Headers, **params: Any) -> list[dict[str, Any]]:
    response = await http.get(FANS, params={"limit": 200, **params}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["nextCursor"] is None
    return response.json()["fans"]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# --- create, read, update, delete -----------------------------------------------------------


async def test_creating_a_fan_answers_201_with_the_fan_its_position_and_an_etag(
    http: httpx.AsyncClient, auth: Headers, tenant: str
) -> None:
    response = await http.post(
        FANS,
        json={
            "name": "  Ann Lee ",
            "platform": "fansly",
            "platformId": "p-1",
            "handle": "@ann_lee",
            "email": "ann@example.com",
            "valueCents": 1250,
            "tags": ["VIP", " big  spender ", "vip"],
            "notes": "met at the launch",
        },
        headers=auth,
    )

    assert response.status_code == 201, response.text
    assert response.headers["etag"] == '"1"'
    body = response.json()
    assert set(body) == {"fan", "position"}
    assert isinstance(body["position"], int)
    assert body["position"] > 0
    fan = body["fan"]
    assert isinstance(fan["id"], int)
    assert fan["userId"] == tenant
    assert fan["platform"] == "fansly"
    assert fan["platformId"] == "p-1"
    assert fan["name"] == "Ann Lee"
    assert fan["handle"] == "@ann_lee"
    assert fan["email"] == "ann@example.com"
    assert fan["valueCents"] == 1250
    assert fan["tags"] == ["vip", "big spender"]
    assert fan["notes"] == "met at the launch"
    assert fan["version"] == 1
    assert fan["createdAt"] == fan["updatedAt"]


async def test_a_created_fan_has_the_defaults_of_the_contract(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    fan = (await create(http, auth, name=None, handle="solo"))["fan"]

    assert fan["platform"] == "onlyfans"
    assert fan["name"] is None
    assert fan["handle"] == "solo"
    assert fan["platformId"] is None
    assert fan["email"] is None
    assert fan["valueCents"] == 0
    assert fan["tags"] == []
    assert fan["notes"] is None
    assert fan["subscribedAt"] is None


async def test_a_subscription_date_is_kept_changed_and_read_back_as_a_day(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    created = await create(http, auth, handle="since", subscribedAt="2024-02-29")
    fan_id = created["fan"]["id"]
    assert created["fan"]["subscribedAt"] == "2024-02-29"

    patched = await http.patch(
        f"{FANS}/{fan_id}", json={"subscribedAt": "2023-12-01"}, headers=auth
    )
    assert patched.status_code == 200, patched.text
    await catch_up()
    got = await http.get(f"{FANS}/{fan_id}", headers=auth)
    assert got.json()["fan"]["subscribedAt"] == "2023-12-01"

    for bad in ("2024-02-30", "yesterday", 20240229):
        refused = await http.patch(f"{FANS}/{fan_id}", json={"subscribedAt": bad}, headers=auth)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")


async def test_a_created_fan_reads_back_as_it_was_answered_once_the_projector_caught_up(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    created = await create(http, auth, name="Bea", email="bea@example.com", tags=["vip"])
    await catch_up()

    response = await http.get(f"{FANS}/{created['fan']['id']}", headers=auth)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["etag"] == '"1"'
    assert response.json() == {"fan": created["fan"]}


async def test_listing_fans_answers_the_tenants_fans_and_no_cursor_on_the_last_page(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    first = await create(http, auth, name="First")
    second = await create(http, auth, name="Second")
    await catch_up()

    response = await http.get(FANS, headers=auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"fans", "nextCursor"}
    assert body["nextCursor"] is None
    assert body["fans"] == [second["fan"], first["fan"]]


async def test_a_tenant_without_fans_lists_an_empty_page(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.get(FANS, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"fans": [], "nextCursor": None}


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_updating_a_fan_changes_only_the_fields_sent(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, method: str
) -> None:
    created = await create(
        http, auth, name="Cat", handle="cat", email="cat@example.com", valueCents=100, tags=["a"]
    )
    fan_id = created["fan"]["id"]

    response = await http.request(
        method, f"{FANS}/{fan_id}", json={"valueCents": 900, "tags": ["B", "c"]}, headers=auth
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    body = response.json()
    assert set(body) == {"fan", "position"}
    assert body["position"] > created["position"]
    fan = body["fan"]
    assert fan["version"] == 2
    assert fan["valueCents"] == 900
    assert fan["tags"] == ["b", "c"]
    assert (fan["name"], fan["handle"], fan["email"]) == ("Cat", "cat", "cat@example.com")
    assert fan["createdAt"] == created["fan"]["createdAt"]
    assert fan["updatedAt"] > created["fan"]["updatedAt"]

    await catch_up()
    got = await http.get(f"{FANS}/{fan_id}", headers=auth)
    assert got.status_code == 200, got.text
    assert got.headers["etag"] == '"2"'
    assert got.json() == {"fan": fan}


async def test_null_clears_a_field_while_leaving_it_out_keeps_it(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    created = await create(http, auth, name="Dan", email="dan@example.com", notes="note")

    response = await http.patch(
        f"{FANS}/{created['fan']['id']}", json={"email": None}, headers=auth
    )

    assert response.status_code == 200, response.text
    fan = response.json()["fan"]
    assert fan["email"] is None
    assert fan["notes"] == "note"
    assert fan["name"] == "Dan"


async def test_patching_with_the_same_values_records_nothing_and_keeps_the_version(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    created = await create(http, auth, name="Eve", valueCents=5, tags=["vip"])
    fan_id = created["fan"]["id"]
    before = await events_of_tenant()

    same = await http.patch(
        f"{FANS}/{fan_id}", json={"name": "Eve", "valueCents": 5, "tags": ["VIP"]}, headers=auth
    )
    nothing = await http.patch(f"{FANS}/{fan_id}", json={}, headers=auth)

    for response in (same, nothing):
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == '"1"'
        assert response.json() == created
    assert await events_of_tenant() == before


async def test_deleting_a_fan_answers_its_id_and_then_it_is_gone_everywhere(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, events_of_tenant: EventCount
) -> None:
    kept = await create(http, auth, name="Kept")
    created = await create(http, auth, name="Gone")
    fan_id = created["fan"]["id"]

    response = await http.delete(f"{FANS}/{fan_id}", headers=auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"id": fan_id, "deleted": True, "erased": False, "position": body["position"]}
    assert body["position"] > created["position"]
    await catch_up()
    assert_problem(await http.get(f"{FANS}/{fan_id}", headers=auth), 404)
    after = await events_of_tenant()
    assert_problem(await http.patch(f"{FANS}/{fan_id}", json={"name": "X"}, headers=auth), 404)
    assert_problem(await http.put(f"{FANS}/{fan_id}", json={"name": "X"}, headers=auth), 404)
    assert_problem(await http.delete(f"{FANS}/{fan_id}", headers=auth), 404)
    assert await events_of_tenant() == after
    assert [fan["id"] for fan in await list_all(http, auth)] == [kept["fan"]["id"]]


async def test_a_fan_that_never_existed_is_404_on_every_verb(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    missing = f"{FANS}/987654321012"

    body = assert_problem(await http.get(missing, headers=auth), 404)
    assert body["type"].endswith("/not-found")
    assert_problem(await http.patch(missing, json={"name": "X"}, headers=auth), 404)
    assert_problem(await http.put(missing, json={"name": "X"}, headers=auth), 404)
    assert_problem(await http.delete(missing, headers=auth), 404)
    assert await events_of_tenant() == 0


async def test_an_id_beyond_the_integer_range_is_404_not_a_server_error(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    missing = f"{FANS}/{2**70}"

    assert_problem(await http.get(missing, headers=auth), 404)
    assert_problem(await http.patch(missing, json={"name": "X"}, headers=auth), 404)
    assert_problem(await http.delete(missing, headers=auth), 404)


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", FANS),
        ("POST", FANS),
        ("GET", f"{FANS}/1"),
        ("PATCH", f"{FANS}/1"),
        ("PUT", f"{FANS}/1"),
        ("DELETE", f"{FANS}/1"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "crm_deadbeef_notakey",
        "Bearer crm_deadbeef_notakeyweknow",
    ],
    ids=["none", "empty", "scheme-only", "blank-key", "basic", "no-scheme", "unknown-key"],
)
async def test_a_request_without_a_valid_key_is_401_problem_json_and_appends_nothing(
    http: httpx.AsyncClient,
    container: Container,
    method: str,
    path: str,
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    before = await container.pool.fetchval("SELECT count(*) FROM events")

    response = await http.request(method, path, json={"name": "Mallory"}, headers=headers)

    body = assert_problem(response, 401)
    assert body["type"].endswith("/unauthorized")
    assert body["title"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert await container.pool.fetchval("SELECT count(*) FROM events") == before


async def test_a_revoked_key_is_401(http: httpx.AsyncClient, container: Container) -> None:
    key, principal = await create_api_key(
        container.pool, user_id=f"user-{uuid.uuid4().hex[:12]}", role="creator"
    )
    await container.pool.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", principal.key_id
    )

    response = await http.get(FANS, headers={"Authorization": f"Bearer {key}"})

    assert_problem(response, 401)


async def test_the_bearer_scheme_is_case_insensitive(http: httpx.AsyncClient, api_key: str) -> None:
    response = await http.get(FANS, headers={"Authorization": f"bearer {api_key}"})

    assert response.status_code == 200, response.text


# --- tenancy --------------------------------------------------------------------------------


async def test_another_tenants_fan_is_not_found_on_get_patch_put_and_delete(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    catch_up: CatchUp,
    events_of_tenant: EventCount,
) -> None:
    created = await create(http, auth, name="Private", valueCents=10)
    fan_id = created["fan"]["id"]
    await catch_up()
    before = await events_of_tenant()
    url = f"{FANS}/{fan_id}"

    for response in (
        await http.get(url, headers=other_auth),
        await http.patch(url, json={"valueCents": 0}, headers=other_auth),
        await http.put(url, json={"valueCents": 0}, headers=other_auth),
        await http.delete(url, headers=other_auth),
        await http.get(url, params={"minPosition": created["position"]}, headers=other_auth),
    ):
        body = assert_problem(response, 404)
        assert body["type"].endswith("/not-found")

    assert await events_of_tenant() == before
    await catch_up()
    owner_view = await http.get(url, headers=auth)
    assert owner_view.status_code == 200, owner_view.text
    assert owner_view.json() == {"fan": created["fan"]}


async def test_a_tenant_never_sees_another_tenants_fans_in_their_list(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: CatchUp
) -> None:
    mine = await create(http, auth, name="Shared Name", tags=["vip"], email="same@example.com")
    theirs = await create(
        http, other_auth, name="Shared Name", tags=["vip"], email="same@example.com"
    )
    await catch_up()

    for params in ({}, {"tag": "vip"}, {"q": "shared"}, {"sort": "-valueCents"}):
        assert [fan["id"] for fan in await list_all(http, auth, **params)] == [mine["fan"]["id"]]
        assert [fan["id"] for fan in await list_all(http, other_auth, **params)] == [
            theirs["fan"]["id"]
        ]


async def test_the_body_cannot_choose_the_tenant(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    response = await http.post(FANS, json={"name": "Ann", "userId": "someone-else"}, headers=auth)

    assert_problem(response, 400)
    assert await events_of_tenant() == 0


# --- optimistic concurrency -----------------------------------------------------------------


async def test_a_stale_if_match_is_a_409_version_conflict_and_appends_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    created = await create(http, auth, name="Fay")
    url = f"{FANS}/{created['fan']['id']}"
    moved = await http.patch(url, json={"name": "Fay B"}, headers={**auth, "If-Match": '"1"'})
    assert moved.status_code == 200, moved.text
    assert moved.json()["fan"]["version"] == 2
    before = await events_of_tenant()

    stale_patch = await http.patch(url, json={"name": "Fay C"}, headers={**auth, "If-Match": '"1"'})
    stale_delete = await http.delete(url, headers={**auth, "If-Match": '"1"'})

    for response in (stale_patch, stale_delete):
        body = assert_problem(response, 409)
        assert body["type"].endswith("/version-conflict")
    assert await events_of_tenant() == before


@pytest.mark.parametrize("if_match", ['"1"', "1", 'W/"1"', ' "1" '])
async def test_a_current_if_match_is_accepted_in_any_usual_spelling(
    http: httpx.AsyncClient, auth: Headers, if_match: str
) -> None:
    created = await create(http, auth, name="Gil")

    response = await http.patch(
        f"{FANS}/{created['fan']['id']}",
        json={"name": "Gil B"},
        headers={**auth, "If-Match": if_match},
    )

    assert response.status_code == 200, response.text
    assert response.json()["fan"]["version"] == 2


async def test_deleting_with_the_current_if_match_deletes(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    created = await create(http, auth, name="Hal")

    response = await http.delete(
        f"{FANS}/{created['fan']['id']}", headers={**auth, "If-Match": '"1"'}
    )

    assert response.status_code == 200, response.text
    assert response.json()["deleted"] is True


@pytest.mark.parametrize(
    "if_match",
    ['"one"', '"-1"', '"1.0"', "", '"1", "2"', '"\u00b2"', "9" * 5000],
    ids=["word", "negative", "decimal", "empty", "list", "superscript", "huge"],
)
async def test_an_if_match_that_is_not_a_version_is_422_and_appends_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount, if_match: str
) -> None:
    created = await create(http, auth, name="Ida")
    url = f"{FANS}/{created['fan']['id']}"
    # Header bytes are latin-1 on the wire: '\u00b2' (superscript two) is a digit to
    # str.isdigit() but not to int().
    headers: dict[str, str | bytes] = {**auth, "If-Match": if_match.encode("latin-1")}

    patched = await http.patch(url, json={"name": "Ida B"}, headers=headers)
    deleted = await http.delete(url, headers=headers)

    for response in (patched, deleted):
        body = assert_problem(response, 422)
        assert body["field"] == "ifMatch"
    assert await events_of_tenant() == 1


# --- rejected input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "Ann"', b"not json", b'{"name": "Ann",}', b"\xff\xfe", b"[1, 2", b""],
    ids=["truncated", "text", "trailing-comma", "not-utf8", "broken-array", "empty"],
)
async def test_malformed_json_is_400_problem_json_and_appends_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount, raw: bytes
) -> None:
    created = await create(http, auth, name="Jo")
    headers = {**auth, "Content-Type": "application/json"}

    posted = await http.post(FANS, content=raw, headers=headers)
    patched = await http.patch(f"{FANS}/{created['fan']['id']}", content=raw, headers=headers)

    for response in (posted, patched):
        assert_problem(response, 400)
    assert await events_of_tenant() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Ann", "valueCents": "5"},
        {"name": "Ann", "valueCents": 5.5},
        {"name": "Ann", "valueCents": 5.0},
        {"name": "Ann", "valueCents": "1e3"},
        {"name": "Ann", "valueCents": True},
        {"name": "Ann", "valueCents": None},
        {"name": 5},
        {"name": "Ann", "tags": "vip"},
        {"name": "Ann", "tags": [1, 2]},
        {"name": "Ann", "email": ["a@example.com"]},
        ["Ann"],
        "Ann",
    ],
    ids=[
        "cents-string",
        "cents-float",
        "cents-integral-float",
        "cents-exponent-string",
        "cents-bool",
        "cents-null",
        "name-number",
        "tags-string",
        "tags-numbers",
        "email-list",
        "array-body",
        "string-body",
    ],
)
async def test_values_of_the_wrong_type_are_400_and_append_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount, body: Any
) -> None:
    created = await create(http, auth, name="Kim")

    posted = await http.post(FANS, json=body, headers=auth)
    patched = await http.patch(f"{FANS}/{created['fan']['id']}", json=body, headers=auth)

    for response in (posted, patched):
        problem = assert_problem(response, 400)
        assert problem["type"].endswith("/validation-error")
    assert await events_of_tenant() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Ann", "nickname": "A"},
        {"name": "Ann", "value_cents": 5},
        {"name": "Ann", "id": 7},
        {"name": "Ann", "version": 3},
    ],
    ids=["unknown", "snake-case", "id", "version"],
)
async def test_unknown_fields_are_400_and_append_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount, body: dict[str, Any]
) -> None:
    created = await create(http, auth, name="Lou")

    posted = await http.post(FANS, json=body, headers=auth)
    patched = await http.patch(f"{FANS}/{created['fan']['id']}", json=body, headers=auth)

    for response in (posted, patched):
        assert_problem(response, 400)
    assert await events_of_tenant() == 1


async def test_a_patch_may_not_change_the_platform(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    created = await create(http, auth, name="Max")

    response = await http.patch(
        f"{FANS}/{created['fan']['id']}", json={"platform": "fansly"}, headers=auth
    )

    assert_problem(response, 400)
    assert await events_of_tenant() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Ann", "email": "not-an-email"}, "email"),
        ({"name": "Ann", "email": "ann@example"}, "email"),
        ({"name": "Ann", "valueCents": -1}, "valueCents"),
        ({"name": "Ann", "valueCents": 1_000_000_001}, "valueCents"),
        ({"name": "Ann", "tags": ["ok", "not ok!"]}, "tags"),
        ({"name": "Ann", "tags": ["   "]}, "tags"),
        ({"name": "Ann", "tags": ["x" * 41]}, "tags"),
        ({"name": "Ann", "handle": "has space"}, "handle"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Ann", "notes": "n" * 10_001}, "notes"),
        ({}, "name"),
        ({"name": "   ", "handle": None}, "name"),
    ],
    ids=[
        "email-no-at",
        "email-no-dot",
        "negative-cents",
        "too-many-cents",
        "bad-tag",
        "empty-tag",
        "long-tag",
        "bad-handle",
        "long-name",
        "long-notes",
        "no-name-no-handle",
        "blank-name-no-handle",
    ],
)
async def test_creating_a_fan_that_breaks_a_domain_rule_is_422_and_appends_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: EventCount,
    body: dict[str, Any],
    field: str,
) -> None:
    response = await http.post(FANS, json=body, headers=auth)

    problem = assert_problem(response, 422)
    assert problem["type"].endswith("/invalid-value")
    assert problem["field"] == field
    assert await events_of_tenant() == 0


async def test_an_unknown_platform_is_422(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    response = await http.post(FANS, json={"name": "Ann", "platform": "myspace"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "platform"
    assert await events_of_tenant() == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"valueCents": -5}, "valueCents"),
        ({"tags": ["fine", "bad/tag"]}, "tags"),
        ({"name": None, "handle": None}, "name"),
        ({"name": " "}, "name"),
    ],
    ids=["email", "negative-cents", "bad-tag", "clears-name-and-handle", "blank-name"],
)
async def test_updating_a_fan_to_break_a_domain_rule_is_422_and_appends_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: EventCount,
    changes: dict[str, Any],
    field: str,
) -> None:
    created = await create(http, auth, name="Ned")
    url = f"{FANS}/{created['fan']['id']}"

    for method in ("PATCH", "PUT"):
        response = await http.request(method, url, json=changes, headers=auth)
        assert assert_problem(response, 422)["field"] == field

    assert await events_of_tenant() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"notes": "\x00"}, "notes"),
        ({"email": "a\x00@b.co"}, "email"),
    ],
    ids=["name", "notes", "email"],
)
async def test_text_holding_a_nul_character_is_422_not_a_server_error(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: EventCount,
    changes: dict[str, Any],
    field: str,
) -> None:
    created = await create(http, auth, name="Nul")

    posted = await http.post(FANS, json={"name": "Ok", **changes}, headers=auth)
    patched = await http.patch(f"{FANS}/{created['fan']['id']}", json=changes, headers=auth)

    for response in (posted, patched):
        assert assert_problem(response, 422)["field"] == field
    assert await events_of_tenant() == 1


async def test_a_platform_id_holding_a_nul_character_is_422(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    response = await http.post(FANS, json={"name": "Ok", "platformId": "p\x00"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "platformId"
    assert await events_of_tenant() == 0


async def test_a_body_over_the_configured_limit_is_413_and_appends_nothing(
    small_body_http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    created = (await small_body_http.post(FANS, json={"name": "Oz"}, headers=auth)).json()
    oversized = {"name": "Oz", "notes": "n" * 300}

    posted = await small_body_http.post(FANS, json=oversized, headers=auth)
    patched = await small_body_http.patch(
        f"{FANS}/{created['fan']['id']}", json={"notes": "n" * 300}, headers=auth
    )

    for response in (posted, patched):
        body = assert_problem(response, 413)
        assert body["type"].endswith("/payload-too-large")
    assert await events_of_tenant() == 1


async def test_a_streamed_body_over_the_configured_limit_is_413(
    small_body_http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "Oz", "notes": "'
        for _ in range(10):
            yield b"n" * 100
        yield b'"}'

    response = await small_body_http.post(
        FANS, content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )

    assert_problem(response, 413)
    assert await events_of_tenant() == 0


async def test_a_body_over_one_mebibyte_is_413_by_default(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: EventCount
) -> None:
    response = await http.post(
        FANS, json={"name": "Big", "notes": "n" * (1024 * 1024)}, headers=auth
    )

    assert_problem(response, 413)
    assert await events_of_tenant() == 0


# --- listing: pages, filters, search, sort --------------------------------------------------


async def test_keyset_pagination_visits_every_fan_once_newest_first(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    ids = [(await create(http, auth, name=f"Fan {n}"))["fan"]["id"] for n in range(7)]
    await catch_up()

    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get(FANS, params=params, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([fan["id"] for fan in body["fans"]])
        cursor = body["nextCursor"]
        if cursor is None:
            break

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [fan_id for page in pages for fan_id in page] == sorted(ids, reverse=True)


async def test_a_page_that_ends_exactly_at_the_last_fan_has_no_next_cursor(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    for n in range(3):
        await create(http, auth, name=f"Fan {n}")
    await catch_up()

    response = await http.get(FANS, params={"limit": 3}, headers=auth)

    assert response.status_code == 200, response.text
    assert len(response.json()["fans"]) == 3
    assert response.json()["nextCursor"] is None


@pytest.mark.parametrize("sort", ["-createdAt", "createdAt", "-valueCents", "valueCents"])
async def test_pagination_follows_every_sort_without_skipping_ties(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, sort: str
) -> None:
    values = [300, 100, 300, 200, 100, 300, 0]
    fans = [
        (await create(http, auth, name=f"Fan {n}", valueCents=cents))["fan"]
        for n, cents in enumerate(values)
    ]
    await catch_up()

    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, "sort": sort}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get(FANS, params=params, headers=auth)
        assert response.status_code == 200, response.text
        seen += [fan["id"] for fan in response.json()["fans"]]
        cursor = response.json()["nextCursor"]
        if cursor is None:
            break

    descending = sort.startswith("-")
    key = "valueCents" if sort.endswith("valueCents") else "id"
    expected = sorted(fans, key=lambda fan: (fan[key], fan["id"]), reverse=descending)
    assert seen == [fan["id"] for fan in expected]


async def test_sorting_by_value_orders_by_cents_then_newest_or_oldest(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    small = (await create(http, auth, name="Small", valueCents=10))["fan"]["id"]
    big = (await create(http, auth, name="Big", valueCents=10_000))["fan"]["id"]
    mid = (await create(http, auth, name="Mid", valueCents=500))["fan"]["id"]
    await catch_up()

    descending = [fan["id"] for fan in await list_all(http, auth, sort="-valueCents")]
    ascending = [fan["id"] for fan in await list_all(http, auth, sort="valueCents")]
    oldest_first = [fan["id"] for fan in await list_all(http, auth, sort="createdAt")]

    assert descending == [big, mid, small]
    assert ascending == [small, mid, big]
    assert oldest_first == [small, big, mid]


async def test_listing_reflects_updated_values_after_catch_up(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    low = (await create(http, auth, name="Low", valueCents=1))["fan"]["id"]
    high = (await create(http, auth, name="High", valueCents=50))["fan"]["id"]
    patched = await http.patch(f"{FANS}/{low}", json={"valueCents": 99}, headers=auth)
    assert patched.status_code == 200, patched.text
    await catch_up()

    listed = await list_all(http, auth, sort="-valueCents")

    assert [fan["id"] for fan in listed] == [low, high]
    assert listed[0] == patched.json()["fan"]


async def test_listing_filters_by_tag_case_insensitively(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    vip = (await create(http, auth, name="Vip", tags=["vip", "whale"]))["fan"]["id"]
    whale = (await create(http, auth, name="Whale", tags=["whale"]))["fan"]["id"]
    await create(http, auth, name="Plain")
    await catch_up()

    assert [fan["id"] for fan in await list_all(http, auth, tag="vip")] == [vip]
    assert [fan["id"] for fan in await list_all(http, auth, tag=" VIP ")] == [vip]
    assert [fan["id"] for fan in await list_all(http, auth, tag="whale")] == [whale, vip]
    assert await list_all(http, auth, tag="nobody") == []


async def test_filtering_by_a_tag_that_could_never_exist_is_422(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.get(FANS, params={"tag": "no/such!tag"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "tags"


async def test_text_search_matches_name_handle_and_email_case_insensitively(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    by_name = (await create(http, auth, name="Rosalind Franklin"))["fan"]["id"]
    by_handle = (await create(http, auth, name="Other", handle="@ROSA_99"))["fan"]["id"]
    by_email = (await create(http, auth, name="Third", email="Rose@Example.com"))["fan"]["id"]
    await create(http, auth, name="Unrelated", handle="zed", email="zed@example.com")
    await catch_up()

    def ids(fans: list[dict[str, Any]]) -> list[int]:
        return [fan["id"] for fan in fans]

    assert ids(await list_all(http, auth, q="ROS")) == [by_email, by_handle, by_name]
    assert ids(await list_all(http, auth, q="franklin")) == [by_name]
    assert ids(await list_all(http, auth, q="rosa_9")) == [by_handle]
    assert ids(await list_all(http, auth, q="rose@example")) == [by_email]
    assert ids(await list_all(http, auth, q="  frank  ")) == [by_name]
    assert await list_all(http, auth, q="nobody-like-this") == []


async def test_text_search_folds_the_case_of_accented_letters(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    emile = (await create(http, auth, name="ÉMILE Zola"))["fan"]["id"]
    await catch_up()

    assert [fan["id"] for fan in await list_all(http, auth, q="émile")] == [emile]
    assert [fan["id"] for fan in await list_all(http, auth, q="Émile")] == [emile]


async def test_searching_for_a_nul_character_is_422_not_a_server_error(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    response = await http.get(FANS, params={"q": "a\x00b"}, headers=auth)

    assert assert_problem(response, 422)["field"] == "q"


async def test_text_search_treats_like_wildcards_as_plain_characters(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    percent = (await create(http, auth, name="100% Fan"))["fan"]["id"]
    underscore = (await create(http, auth, name="Under", handle="a_b"))["fan"]["id"]
    await create(http, auth, name="Plain", handle="axb")
    await catch_up()

    assert [fan["id"] for fan in await list_all(http, auth, q="%")] == [percent]
    assert [fan["id"] for fan in await list_all(http, auth, q="a_b")] == [underscore]
    assert await list_all(http, auth, q="\\") == []


async def test_search_tag_and_sort_combine(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    rich = (await create(http, auth, name="Ann Rich", tags=["vip"], valueCents=900))["fan"]["id"]
    poor = (await create(http, auth, name="Ann Poor", tags=["vip"], valueCents=10))["fan"]["id"]
    await create(http, auth, name="Ann Untagged", valueCents=5000)
    await create(http, auth, name="Bob", tags=["vip"], valueCents=7000)
    await catch_up()

    listed = await list_all(http, auth, q="ann", tag="vip", sort="-valueCents")

    assert [fan["id"] for fan in listed] == [rich, poor]


@pytest.mark.parametrize(
    "cursor",
    ["garbage!", "bm90IGpzb24", "WzEsMiwzXQ", "WyJhIiwxXQ", "é", "W10"],
    ids=["not-base64", "not-json", "three-items", "string-item", "non-ascii", "empty-list"],
)
async def test_a_cursor_this_api_did_not_return_is_422(
    http: httpx.AsyncClient, auth: Headers, cursor: str
) -> None:
    response = await http.get(FANS, params={"cursor": cursor}, headers=auth)

    body = assert_problem(response, 422)
    assert body["field"] == "cursor"


@pytest.mark.parametrize("sort", ["-createdAt", "-valueCents"])
async def test_a_cursor_with_values_beyond_the_integer_range_is_422(
    http: httpx.AsyncClient, auth: Headers, sort: str
) -> None:
    # msgspec decodes integers up to 2**64 - 1; Postgres bigint stops at 2**63 - 1.
    raw = msgspec.json.encode([2**64 - 1, 2**64 - 1])
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    response = await http.get(FANS, params={"cursor": cursor, "sort": sort}, headers=auth)

    assert assert_problem(response, 422)["field"] == "cursor"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": -1},
        {"limit": "ten"},
        {"sort": "name"},
        {"minPosition": 0},
        {"minPosition": "soon"},
    ],
    ids=["limit-0", "limit-201", "limit-negative", "limit-text", "sort", "min-0", "min-text"],
)
async def test_query_parameters_out_of_range_are_400(
    http: httpx.AsyncClient, auth: Headers, params: dict[str, Any]
) -> None:
    response = await http.get(FANS, params=params, headers=auth)

    body = assert_problem(response, 400)
    assert body["type"].endswith("/validation-error")


async def test_the_largest_and_smallest_limits_are_accepted(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    first = await create(http, auth, name="One")
    second = await create(http, auth, name="Two")
    await catch_up()

    one = await http.get(FANS, params={"limit": 1}, headers=auth)
    all_ = await http.get(FANS, params={"limit": 200}, headers=auth)

    assert one.status_code == 200, one.text
    assert [fan["id"] for fan in one.json()["fans"]] == [second["fan"]["id"]]
    assert one.json()["nextCursor"] is not None
    assert all_.status_code == 200, all_.text
    assert [fan["id"] for fan in all_.json()["fans"]] == [second["fan"]["id"], first["fan"]["id"]]


# --- read-your-writes -----------------------------------------------------------------------


async def test_reading_at_a_position_the_projector_has_not_reached_is_503_then_200(
    http: httpx.AsyncClient, impatient_http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    created = await create(http, auth, name="Pat")
    url = f"{FANS}/{created['fan']['id']}"
    at_create = {"minPosition": created["position"]}

    waited = await impatient_http.get(url, params=at_create, headers=auth)
    listed = await impatient_http.get(FANS, params=at_create, headers=auth)

    for response in (waited, listed):
        body = assert_problem(response, 503)
        assert body["type"].endswith("/projection-lagging")
        assert response.headers["retry-after"] == "1"

    await catch_up()
    got = await impatient_http.get(url, params=at_create, headers=auth)
    assert got.status_code == 200, got.text
    assert got.json() == {"fan": created["fan"]}
    listed = await impatient_http.get(FANS, params=at_create, headers=auth)
    assert listed.status_code == 200, listed.text
    assert listed.json()["fans"] == [created["fan"]]


async def test_reading_at_an_update_position_sees_the_update(
    http: httpx.AsyncClient,
    impatient_http: httpx.AsyncClient,
    auth: Headers,
    catch_up: CatchUp,
    container: Container,
    tenant: str,
) -> None:
    """Another key of the account (which wrote nothing) reads the update with its position;
    without one it reads the view as it stands."""
    reader_key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
    reader = {"Authorization": f"Bearer {reader_key}"}
    created = await create(http, auth, name="Quin")
    await catch_up()
    url = f"{FANS}/{created['fan']['id']}"
    updated = (await http.patch(url, json={"name": "Quinn"}, headers=auth)).json()

    lagging = await impatient_http.get(
        url, params={"minPosition": updated["position"]}, headers=reader
    )
    assert_problem(lagging, 503)
    stale = await impatient_http.get(url, headers=reader)
    assert stale.json()["fan"]["name"] == "Quin"

    await catch_up()
    fresh = await impatient_http.get(
        url, params={"minPosition": updated["position"]}, headers=reader
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json() == {"fan": updated["fan"]}


async def test_a_read_that_waits_is_answered_as_soon_as_the_projector_catches_up(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    created = await create(http, auth, name="Rae")
    read = asyncio.create_task(
        http.get(
            f"{FANS}/{created['fan']['id']}",
            params={"minPosition": created["position"]},
            headers=auth,
        )
    )
    await asyncio.sleep(0.05)
    await catch_up()

    response = await read
    assert response.status_code == 200, response.text
    assert response.json()["fan"]["name"] == "Rae"


async def test_a_position_no_event_holds_is_refused_at_once_with_400(
    impatient_http: httpx.AsyncClient, auth: Headers
) -> None:
    """Waiting for a position that was never written would only run out the clock (503)."""
    for position in (10**12, 2**63 - 1):
        response = await impatient_http.get(FANS, params={"minPosition": position}, headers=auth)
        body = assert_problem(response, 400)
        assert "minPosition" in body["detail"]

    response = await impatient_http.get(FANS, params={"minPosition": 2**63}, headers=auth)
    assert_problem(response, 400)


# --- documentation and health ---------------------------------------------------------------


async def test_the_openapi_document_is_served_without_a_key_and_lists_the_fans_routes(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert set(paths[FANS]) >= {"get", "post"}
    item = next(path for path in paths if path.startswith(f"{FANS}/{{"))
    assert set(paths[item]) >= {"get", "patch", "put", "delete"}
    assert "apiKey" in document["components"]["securitySchemes"]


async def test_health_needs_no_key(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


async def test_every_response_carries_a_correlation_id_and_echoes_the_callers(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    echoed = await http.get(FANS, headers={**auth, "X-Correlation-ID": "trace-me-123"})
    made = await http.get(FANS)

    assert echoed.headers["x-correlation-id"] == "trace-me-123"
    assert made.headers["x-correlation-id"]
