"""Workspace members over HTTP, for the API tests: invite and accept, add an account."""

from __future__ import annotations

from typing import Any

import httpx

MEMBERS = "/api/workspace/members"
ACCEPT = "/api/workspace/invites/accept"


async def invite(
    http: httpx.AsyncClient, owner: dict[str, str], role: str, accounts: Any = "all"
) -> dict[str, Any]:
    answer = await http.post(MEMBERS, json={"role": role, "accounts": accounts}, headers=owner)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def member(
    http: httpx.AsyncClient, owner: dict[str, str], role: str, accounts: Any = "all"
) -> tuple[str, dict[str, str]]:
    """(member id, its headers): invited by ``owner`` and accepted."""
    invited = await invite(http, owner, role, accounts)
    accepted = await http.post(ACCEPT, json={"token": invited["inviteToken"]})
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    return body["memberId"], {"Authorization": f"Bearer {body['apiKey']}"}


async def account(http: httpx.AsyncClient, owner: dict[str, str], name: str = "Bea") -> str:
    answer = await http.post("/api/workspace/accounts", json={"name": name}, headers=owner)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["accountId"])


def is_problem(answer: httpx.Response, status: int, field: str | None = None) -> bool:
    """A problem+json answer of ``status`` (naming ``field``, if given)."""
    return (
        answer.status_code == status
        and answer.headers["content-type"].startswith("application/problem+json")
        and (field is None or answer.json().get("field") == field)
    )
