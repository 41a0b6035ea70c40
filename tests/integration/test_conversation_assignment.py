"""Conversations assigned to a member of the workspace: a manager assigns, reassigns and
unassigns; the list filters by assignee (a member's id, ``me``, ``none``); an assignee must be
an active member who may act on the conversation's account; the audit names who assigned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from adapters import bootstrap
from tests.integration.test_read_your_writes import projectors_running
from tests.support.members import account, invite, is_problem, member

CONVERSATIONS = "/api/crm/conversations"


async def _conversation(http: httpx.AsyncClient, headers: dict[str, str], handle: str) -> int:
    fan = await http.post(
        "/api/crm/fans", json={"handle": handle, "platform": "onlyfans"}, headers=headers
    )
    assert fan.status_code == 201, fan.text
    opened = await http.post(
        CONVERSATIONS,
        json={"fanId": fan.json()["fan"]["id"], "platform": "onlyfans"},
        headers=headers,
    )
    assert opened.status_code == 201, opened.text
    return int(opened.json()["id"])


async def _assign(
    http: httpx.AsyncClient, headers: dict[str, str], conversation_id: int, member_id: str | None
) -> httpx.Response:
    return await http.put(
        f"{CONVERSATIONS}/{conversation_id}/assignee",
        json={"memberId": member_id},
        headers=headers,
    )


async def _listed(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[int]:
    answer = await http.get(CONVERSATIONS, params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["conversations"]]


async def test_a_manager_assigns_reassigns_and_unassigns_and_the_list_filters_by_assignee(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    tenant: str,
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    _, manager = await member(http, auth, "manager")
    ann, ann_key = await member(http, auth, "chatter", [tenant])
    bob, _ = await member(http, auth, "chatter")
    first = await _conversation(http, auth, "fan1")
    second = await _conversation(http, auth, "fan2")

    assigned = await _assign(http, manager, first, ann)
    assert assigned.status_code == 200, assigned.text
    body = assigned.json()
    assert body["conversation"]["id"] == first
    assert body["conversation"]["assignedTo"] == ann
    assert body["position"] > 0
    await catch_up()
    shown = await http.get(f"{CONVERSATIONS}/{first}", headers=manager)
    assert shown.json()["conversation"]["assignedTo"] == ann
    assert set(shown.json()["conversation"]) == set(body["conversation"])
    unassigned = await http.get(f"{CONVERSATIONS}/{second}", headers=manager)
    assert unassigned.json()["conversation"]["assignedTo"] is None
    assert await _listed(http, manager, assignedTo=ann) == [first]
    assert await _listed(http, ann_key, assignedTo="me") == [first]
    assert await _listed(http, manager, assignedTo="none") == [second]
    assert await _listed(http, manager) == [second, first]  # newest activity first, as before

    reassigned = await _assign(http, manager, first, bob)
    assert reassigned.json()["conversation"]["assignedTo"] == bob
    await catch_up()
    assert await _listed(http, manager, assignedTo=ann) == []
    assert await _listed(http, manager, assignedTo=bob) == [first]

    cleared = await _assign(http, manager, first, None)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["conversation"]["assignedTo"] is None
    await catch_up()
    assert await _listed(http, manager, assignedTo=bob) == []
    # Keyset pagination holds under the filter: a page of one, then the next.
    page = await http.get(CONVERSATIONS, params={"assignedTo": "none", "limit": 1}, headers=manager)
    assert [c["id"] for c in page.json()["conversations"]] == [second]
    cursor = page.json()["nextCursor"]
    assert cursor
    rest = await http.get(
        CONVERSATIONS,
        params={"assignedTo": "none", "limit": 1, "cursor": cursor},
        headers=manager,
    )
    assert [c["id"] for c in rest.json()["conversations"]] == [first]
    assert rest.json()["nextCursor"] is None


async def test_the_assigning_key_reads_its_assignment_at_once(
    container: bootstrap.Container,
    http: httpx.AsyncClient,
    auth: dict[str, str],
    catch_up: Callable[[], Awaitable[int]],
) -> None:
    """Read-your-writes with the projectors in the background: no minPosition, no wait."""
    _, manager = await member(http, auth, "manager")
    chatter, _ = await member(http, auth, "chatter")
    conversation = await _conversation(http, auth, "fan3")
    await catch_up()
    async with projectors_running(container):
        assert (await _assign(http, manager, conversation, chatter)).status_code == 200
        assert await _listed(http, manager, assignedTo=chatter) == [conversation]
        shown = await http.get(f"{CONVERSATIONS}/{conversation}", headers=manager)
        assert shown.json()["conversation"]["assignedTo"] == chatter


async def test_another_accounts_conversation_is_not_found(
    http: httpx.AsyncClient, auth: dict[str, str], other_auth: dict[str, str]
) -> None:
    chatter, _ = await member(http, auth, "chatter")
    theirs = await _conversation(http, other_auth, "fan4")
    assert is_problem(await _assign(http, auth, theirs, chatter), 404)
    assert is_problem(await _assign(http, auth, theirs, None), 404)
    assert is_problem(await _assign(http, auth, 2**62, chatter), 404)


async def test_an_assignee_must_be_an_active_member_who_may_act_on_the_account(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    other_auth: dict[str, str],
    events_of_tenant: Callable[[], Awaitable[int]],
) -> None:
    conversation = await _conversation(http, auth, "fan5")
    elsewhere = await account(http, auth)
    only_b, _ = await member(http, auth, "chatter", [elsewhere])
    removed, _ = await member(http, auth, "chatter")
    assert (await http.delete(f"/api/workspace/members/{removed}", headers=auth)).status_code == 200
    pending = (await invite(http, auth, "chatter"))["memberId"]
    strangers, _ = await member(http, other_auth, "chatter")
    before = await events_of_tenant()
    for refused in (only_b, removed, pending, strangers, "no-such-member"):
        answer = await _assign(http, auth, conversation, refused)
        assert is_problem(answer, 422, field="memberId"), (refused, answer.text)
    assert await events_of_tenant() == before
    assert is_problem(await _assign(http, auth, conversation, ""), 422, field="memberId")
    no_field = await http.put(f"{CONVERSATIONS}/{conversation}/assignee", json={}, headers=auth)
    assert is_problem(no_field, 400)


async def test_a_chatter_may_not_assign(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    chatter, chatter_key = await member(http, auth, "chatter")
    conversation = await _conversation(http, auth, "fan6")
    assert is_problem(await _assign(http, chatter_key, conversation, chatter), 403)


async def test_me_needs_a_members_key(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    answer = await http.get(CONVERSATIONS, params={"assignedTo": "me"}, headers=auth)
    assert is_problem(answer, 422, field="assignedTo")


async def test_the_audit_names_the_assigning_member_and_a_repeat_appends_nothing(
    http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    manager_id, manager = await member(http, auth, "manager")
    chatter, _ = await member(http, auth, "chatter")
    conversation = await _conversation(http, auth, "fan7")
    headers = {**manager, "Idempotency-Key": "assign-once"}
    first = await _assign(http, headers, conversation, chatter)
    again = await _assign(http, headers, conversation, chatter)
    assert (first.status_code, again.status_code) == (200, 200), again.text
    # PUT is idempotent by itself: the same assignment again changes nothing, at the same
    # position, whatever the key.
    assert again.json()["position"] == first.json()["position"]
    assert again.json()["conversation"]["assignedTo"] == chatter

    # The stream's history, read from the log itself (the global audit list reads below the
    # oldest transaction running on the server, which other databases there may hold back).
    stream = await http.get(f"/api/audit/streams/conversation-{conversation}", headers=auth)
    assert stream.status_code == 200, stream.text
    assigned = [e for e in stream.json()["events"] if e["eventType"] == "ConversationAssigned"]
    assert len(assigned) == 1
    assert assigned[0]["metadata"]["actor"] == f"member:{manager_id}"
    assert assigned[0]["data"]["memberId"] == chatter
    assert stream.json()["state"]["assignedTo"] == chatter
