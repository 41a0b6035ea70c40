"""Every route of the app, called with a key of every role: what a role lacks is refused (403)
before anything runs, what it has is let through; and the OpenAPI says which is which."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from litestar.routes import HTTPRoute

from adapters import bootstrap
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from application.permissions import MEMBER_ROLES, ROLES, Permission, permissions_of
from tests.support.audit import audit_events_when


def _operations() -> list[tuple[str, str, str]]:
    """(method, path, the permission it declares) for every authenticated operation."""
    from tests.support.settings import settings_for

    app = create_app(settings=settings_for("postgresql://unused/none"))
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            needed = handler.opt.get("permission")
            # A stream never ends, so it cannot be called here: tests/e2e/test_live.py
            # checks who may open it.
            if needed in (None, "public") or handler.opt.get("stream"):
                continue
            methods = sorted(handler.http_methods - {"OPTIONS"})
            found += [(method, route.path, str(needed)) for method in methods]
    return found


OPERATIONS = _operations()


def _concrete(path: str) -> str:
    path = re.sub(r"\{[a-z_]+:int\}", "1", path)
    return re.sub(r"\{[a-z_]+:str\}", str(uuid.uuid4()), path)


def test_every_authenticated_route_declares_a_permission() -> None:
    assert len(OPERATIONS) >= 30
    assert {p for _, _, p in OPERATIONS} <= {p.value for p in Permission}


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_reaches_exactly_the_routes_its_permissions_allow(
    role: str, container: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    key, _ = await create_api_key(
        container.pool, user_id=f"user-{uuid.uuid4().hex[:12]}", role=role
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    allowed = {p.value for p in permissions_of(role)}
    for method, path, needed in OPERATIONS:
        response = await http.request(method, _concrete(path), headers=headers, content=b"{}")
        where = f"{role} {method} {path}"
        if needed in allowed:
            assert response.status_code != 403, where
            # The health check answers 503 when sending is down (here: no limiter's Redis).
            if (method, path) != ("GET", "/api/monitoring/onlyfans"):
                assert response.status_code < 500, where
        else:
            assert response.status_code == 403, where
            assert response.headers["content-type"].startswith("application/problem+json"), where


@pytest.mark.parametrize("role", MEMBER_ROLES)
async def test_each_member_role_reaches_exactly_the_routes_its_permissions_allow(
    role: str, container: bootstrap.Container, http: httpx.AsyncClient
) -> None:
    owner_key, _ = await create_api_key(
        container.pool, user_id=f"user-{uuid.uuid4().hex[:12]}", role="creator"
    )
    invite = await http.post(
        "/api/workspace/members",
        json={"role": role, "accounts": "all"},
        headers={"Authorization": f"Bearer {owner_key}"},
    )
    assert invite.status_code == 201, invite.text
    accepted = await http.post(
        "/api/workspace/invites/accept", json={"token": invite.json()["inviteToken"]}
    )
    assert accepted.status_code == 201, accepted.text
    headers = {
        "Authorization": f"Bearer {accepted.json()['apiKey']}",
        "Content-Type": "application/json",
    }
    allowed = {p.value for p in MEMBER_ROLES[role]}
    for method, path, needed in OPERATIONS:
        response = await http.request(method, _concrete(path), headers=headers, content=b"{}")
        where = f"member {role} {method} {path}"
        if needed in allowed:
            assert response.status_code not in (401, 403), where
            if (method, path) != ("GET", "/api/monitoring/onlyfans"):
                assert response.status_code < 500, where
        else:
            assert response.status_code == 403, where
            assert response.headers["content-type"].startswith("application/problem+json"), where


async def test_an_auditor_key_changes_nothing(
    container: bootstrap.Container, http: httpx.AsyncClient, auth: dict[str, str], tenant: str
) -> None:
    key, _ = await create_api_key(container.pool, user_id=tenant, role="auditor")
    auditor = {"Authorization": f"Bearer {key}"}
    created = await http.post(
        "/api/crm/fans", json={"handle": "ann", "platform": "onlyfans"}, headers=auditor
    )
    assert created.status_code == 403
    fan = await http.post(
        "/api/crm/fans", json={"handle": "ann", "platform": "onlyfans"}, headers=auth
    )
    assert fan.status_code == 201
    fan_id = fan.json()["fan"]["id"]
    erased = await http.delete(f"/api/crm/fans/{fan_id}", headers=auditor)
    assert erased.status_code == 403
    sent = await http.post(
        "/api/onlyfans/messages/send",
        json={"recipientId": fan_id, "content": "hi"},
        headers=auditor,
    )
    assert sent.status_code == 403


async def test_an_auditor_created_without_tenants_reads_its_own_users_history(
    container: bootstrap.Container, http: httpx.AsyncClient, auth: dict[str, str], tenant: str
) -> None:
    fan = await http.post(
        "/api/crm/fans", json={"handle": "bea", "platform": "onlyfans"}, headers=auth
    )
    assert fan.status_code == 201
    key, _ = await create_api_key(container.pool, user_id=tenant, role="auditor")
    events = await audit_events_when(http, {"Authorization": f"Bearer {key}"}, bool)
    tenants = [event["metadata"]["tenant"] for event in events]
    assert tenants
    assert set(tenants) == {tenant}


async def test_the_openapi_shows_the_permission_of_every_operation(
    http: httpx.AsyncClient,
) -> None:
    schema = (await http.get("/schema/openapi.json")).json()
    for method, path, needed in OPERATIONS:
        openapi_path = re.sub(r"\{([a-z_]+):[a-z]+\}", r"{\1}", path)
        operation = schema["paths"][openapi_path][method.lower()]
        assert operation["security"] == [{"apiKey": [needed]}], (method, path)
