"""Workspaces over HTTP: members act on the accounts they were given and nothing else, a
removed member's key stops at once in every API process, an invite works once, a role without
"send PPV" cannot send a price, and a member's commands name the member as their actor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from adapters import bootstrap
from adapters.http.app import create_app
from tests.support.audit import audit_events_when
from tests.support.members import ACCEPT, MEMBERS
from tests.support.members import account as _account
from tests.support.members import invite as _invite
from tests.support.members import is_problem as _is_problem
from tests.support.members import member as _member

FANS = "/api/crm/fans"
SEND = "/api/onlyfans/messages/send"


async def _fan(http: httpx.AsyncClient, headers: dict[str, str], handle: str) -> int:
    answer = await http.post(FANS, json={"handle": handle, "platform": "onlyfans"}, headers=headers)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["fan"]["id"])


async def test_a_chatter_of_account_a_neither_reads_nor_writes_account_b_of_its_workspace(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    account_b = await _account(http, auth)
    in_b = {**auth, "X-Account-Id": account_b}
    fan_a = await _fan(http, auth, "ann")
    fan_b = await _fan(http, in_b, "bea")
    _, chatter = await _member(http, auth, "chatter", [tenant])
    chatter_in_b = {**chatter, "X-Account-Id": account_b}
    await catch_up()  # the fans view, which the chatter's reads do not wait for

    assert (await http.get(f"{FANS}/{fan_a}", headers=chatter)).status_code == 200
    # Its only account is A: B's fan is not there, and naming B is naming a stranger.
    assert _is_problem(await http.get(f"{FANS}/{fan_b}", headers=chatter), 404)
    assert _is_problem(await http.get(f"{FANS}/{fan_b}", headers=chatter_in_b), 404)
    assert _is_problem(await http.get(FANS, headers=chatter_in_b), 404)
    sent_to_b = await http.post(
        SEND, json={"recipientId": fan_b, "content": "hi"}, headers=chatter_in_b
    )
    assert _is_problem(sent_to_b, 404)
    sent_from_a = await http.post(
        SEND, json={"recipientId": fan_b, "content": "hi"}, headers=chatter
    )
    # Within A, B's fan is no recipient (as another tenant's fan never is).
    assert _is_problem(sent_from_a, 422)
    # A chatter sends, but edits no fan.
    assert _is_problem(
        await http.post(FANS, json={"handle": "cy", "platform": "onlyfans"}, headers=chatter), 403
    )
    sent = await http.post(SEND, json={"recipientId": fan_a, "content": "hi"}, headers=chatter)
    assert sent.status_code == 202, sent.text
    # The owner's key reads B when it names it, and its own tenant without a header, as before.
    assert (await http.get(f"{FANS}/{fan_b}", headers=in_b)).status_code == 200
    assert _is_problem(await http.get(f"{FANS}/{fan_b}", headers=auth), 404)


async def test_a_stranger_account_named_by_any_key_is_not_found(
    http: httpx.AsyncClient, auth: dict[str, str], other_auth: dict[str, str]
) -> None:
    theirs = await _account(http, other_auth)
    assert _is_problem(await http.get(FANS, headers={**auth, "X-Account-Id": theirs}), 404)
    _, owner = await _member(http, auth, "owner")
    assert _is_problem(await http.get(FANS, headers={**owner, "X-Account-Id": theirs}), 404)


async def test_a_removed_members_key_answers_401_at_once_in_every_api_process(
    container: bootstrap.Container,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    member_id, chatter = await _member(http, auth, "chatter")
    # The workspaces view has the member active, and has not applied its removal when its
    # key is next used: the revoked key fails all the same.
    await catch_up()
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        for client in (http, other):
            assert (await client.get(FANS, headers=chatter)).status_code == 200
        removed = await http.delete(f"{MEMBERS}/{member_id}", headers=auth)
        assert removed.status_code == 200, removed.text
        for client in (http, other):
            assert _is_problem(await client.get(FANS, headers=chatter), 401)
    assert _is_problem(await http.delete(f"{MEMBERS}/{member_id}", headers=auth), 404)


async def test_a_custom_role_without_send_ppv_sends_free_messages_only(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    role = await http.post(
        "/api/workspace/roles",
        json={"name": "texter", "permissions": ["crm:read", "messages:send"]},
        headers=auth,
    )
    assert role.status_code == 201, role.text
    assert role.json() == {"name": "texter", "permissions": ["crm:read", "messages:send"]}
    again = await http.post(
        "/api/workspace/roles", json={"name": "texter", "permissions": []}, headers=auth
    )
    assert _is_problem(again, 409)
    fan = await _fan(http, auth, "dee")
    _, texter = await _member(http, auth, "texter")
    priced = await http.post(
        SEND, json={"recipientId": fan, "content": "pics", "priceCents": 500}, headers=texter
    )
    assert _is_problem(priced, 403)
    batch = await http.post(
        "/api/onlyfans/messages/batch",
        json={"messages": [{"recipientId": fan, "content": "pics", "priceCents": 500}]},
        headers=texter,
    )
    assert _is_problem(batch, 403)
    free = await http.post(SEND, json={"recipientId": fan, "content": "hi"}, headers=texter)
    assert free.status_code == 202, free.text
    _, chatter = await _member(http, auth, "chatter")
    paid = await http.post(
        SEND, json={"recipientId": fan, "content": "pics", "priceCents": 500}, headers=chatter
    )
    assert paid.status_code == 202, paid.text


async def test_an_invite_is_single_use_and_a_bad_token_is_not_found(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    invite = await _invite(http, auth, "chatter")
    token = {"token": invite["inviteToken"]}
    assert (await http.post(ACCEPT, json=token)).status_code == 201
    assert _is_problem(await http.post(ACCEPT, json=token), 410)
    assert _is_problem(await http.post(ACCEPT, json={"token": token["token"] + "x"}), 404)
    assert _is_problem(await http.post(ACCEPT, json={"token": "inv_nothing"}), 404)
    cancelled = await _invite(http, auth, "chatter")
    await http.delete(f"{MEMBERS}/{cancelled['memberId']}", headers=auth)
    assert _is_problem(await http.post(ACCEPT, json={"token": cancelled["inviteToken"]}), 410)


async def test_a_members_send_records_the_member_as_actor_and_the_list_shows_no_secret(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    fan = await _fan(http, auth, "eve")
    member_id, chatter = await _member(http, auth, "chatter", [tenant])
    sent = await http.post(SEND, json={"recipientId": fan, "content": "hi"}, headers=chatter)
    assert sent.status_code == 202, sent.text
    events = await audit_events_when(
        http,
        auth,
        lambda events: "MessageQueued" in {event["eventType"] for event in events},
        params={"actor": f"member:{member_id}"},
    )
    assert "MessageQueued" in {event["eventType"] for event in events}
    assert {event["metadata"]["tenant"] for event in events} == {tenant}

    await catch_up()
    listed = await http.get(MEMBERS, headers=auth)
    assert listed.status_code == 200, listed.text
    [member] = [m for m in listed.json()["members"] if m["memberId"] == member_id]
    assert member["status"] == "active"
    assert member["accounts"] == [tenant]
    assert member["role"] == "chatter"
    assert set(member) == {
        "memberId", "name", "role", "permissions", "accounts", "status", "invitedBy",
        "invitedAt", "expiresAt", "joinedAt", "removedAt",
    }  # fmt: skip


async def test_first_release_keys_may_not_manage_members_unless_creators(
    container: bootstrap.Container, http: httpx.AsyncClient, tenant: str
) -> None:
    from adapters.postgres.api_keys import create_api_key

    key, _ = await create_api_key(container.pool, user_id=tenant, role="auditor")
    auditor = {"Authorization": f"Bearer {key}"}
    answer = await http.post(MEMBERS, json={"role": "chatter", "accounts": "all"}, headers=auditor)
    assert _is_problem(answer, 403)


async def test_an_invite_retried_with_its_idempotency_key_invites_nobody_twice(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = {**auth, "Idempotency-Key": "invite-once"}
    body = {"role": "chatter", "accounts": "all"}
    first = await http.post(MEMBERS, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await http.post(MEMBERS, json=body, headers=headers)
    assert _is_problem(again, 409)
    assert first.json()["inviteToken"] not in again.text
    role = {"name": "closer", "permissions": ["crm:read"]}
    made = await http.post(
        "/api/workspace/roles", json=role, headers=headers | {"Idempotency-Key": "r"}
    )
    replayed = await http.post(
        "/api/workspace/roles", json=role, headers=headers | {"Idempotency-Key": "r"}
    )
    assert (made.status_code, replayed.status_code) == (201, 201)
    assert replayed.headers["Idempotent-Replayed"] == "true"


async def test_without_send_ppv_a_member_neither_launches_a_priced_draft_nor_retries_a_ppv(
    http: httpx.AsyncClient, auth: dict[str, str], catch_up: Callable[[], Awaitable[int]]
) -> None:
    role = await http.post(
        "/api/workspace/roles",
        json={
            "name": "mass-texter",
            "permissions": ["crm:read", "messages:send", "campaigns:launch"],
        },
        headers=auth,
    )
    assert role.status_code == 201, role.text
    _, texter = await _member(http, auth, "mass-texter")
    fan = await _fan(http, auth, "eve")
    await catch_up()
    drafts = []
    for price in (900, 0):
        draft = await http.post(
            "/api/crm/campaigns",
            json={
                "name": f"draft {price}",
                "template": {"content": "pics", "priceCents": price},
                "targetAudience": {"recipientIds": [fan]},
            },
            headers=auth,
        )
        assert draft.status_code == 201, draft.text
        drafts.append(draft.json()["id"])
    priced, free = drafts
    launch = {"status": "active"}
    assert _is_problem(
        await http.patch(f"/api/crm/campaigns/{priced}", json=launch, headers=texter), 403
    )
    launched = await http.patch(f"/api/crm/campaigns/{free}", json=launch, headers=texter)
    assert launched.status_code == 200, launched.text

    ppv = await http.post(
        SEND, json={"recipientId": fan, "content": "pics", "priceCents": 500}, headers=auth
    )
    assert ppv.status_code == 202, ppv.text
    retry = f"/api/onlyfans/messages/{ppv.json()['messageId']}/retry"
    assert _is_problem(await http.post(retry, headers=texter), 403)
    # The owner may: refused for what the message is (queued, not failed), not for who asks.
    assert _is_problem(await http.post(retry, headers=auth), 409)
