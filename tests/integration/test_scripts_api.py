"""Saved replies (scripts) and sensitive words over HTTP, against the real app and Postgres.

No projector runs in the background: a test reads its writes back after ``catch_up``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from adapters.bootstrap import Container
from application import messages
from application.context import CommandContext
from application.webhooks import WebhookEvent, handle_webhook
from tests.integration.test_messaging_api import SEND, assert_problem, new_fan

SCRIPTS = "/api/crm/scripts"
WORDS = "/api/crm/sensitive-words"
CRM_MESSAGES = "/api/crm/messages"
PPV = "https://cdn.example.com/vault/set-7.jpg"

Headers = dict[str, str]


async def new_script(http: httpx.AsyncClient, auth: Headers, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Good morning")
    body.setdefault("content", "Morning {{first_name|babe}}, this one is for you")
    response = await http.post(SCRIPTS, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_send_from_a_script_renders_the_fans_name_and_takes_its_price_and_media(
    http: httpx.AsyncClient, auth: Headers, catch_up: Any
) -> None:
    fan_id = await new_fan(http, auth, name="Ann Smith")
    script = (await new_script(http, auth, priceCents=1_500, mediaUrls=[PPV]))["script"]

    sent = await http.post(
        SEND, json={"recipientId": fan_id, "scriptId": script["id"]}, headers=auth
    )

    assert sent.status_code == 202, sent.text
    await catch_up()
    message = (await http.get(f"{CRM_MESSAGES}/{sent.json()['messageId']}", headers=auth)).json()[
        "message"
    ]
    assert message["content"] == "Morning Ann, this one is for you"
    assert message["priceCents"] == 1_500
    assert [a["url"] for a in message["attachments"]] == [PPV]


async def test_a_send_from_another_accounts_script_is_404_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    events_of_tenant: Any,
    catch_up: Any,
) -> None:
    fan_id = await new_fan(http, auth)
    theirs = (await new_script(http, other_auth))["script"]["id"]
    events = await events_of_tenant()

    for script_id in (theirs, 9_000_000_000):
        response = await http.post(
            SEND, json={"recipientId": fan_id, "scriptId": script_id}, headers=auth
        )
        # Told apart from an unknown script by nothing.
        assert assert_problem(response, 404)["detail"] == "no such resource for this account"
    await catch_up()
    assert_problem(await http.get(f"{SCRIPTS}/{theirs}", headers=auth), 404)
    assert_problem(await http.patch(f"{SCRIPTS}/{theirs}", json={"name": "x"}, headers=auth), 404)
    assert_problem(await http.delete(f"{SCRIPTS}/{theirs}", headers=auth), 404)
    assert await events_of_tenant() == events


async def test_a_send_without_content_or_script_is_still_400(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    fan_id = await new_fan(http, auth)
    response = await http.post(SEND, json={"recipientId": fan_id}, headers=auth)
    assert "content" in assert_problem(response, 400)["detail"]


async def test_a_sensitive_word_refuses_the_send_with_422_naming_it_and_records_nothing(
    http: httpx.AsyncClient, auth: Headers, events_of_tenant: Any, catch_up: Any
) -> None:
    fan_id = await new_fan(http, auth)
    put = await http.put(WORDS, json={"words": ["venmo", "cash app"]}, headers=auth)
    assert put.status_code == 200, put.text
    assert put.json()["words"] == ["venmo", "cash app"]
    script = (await new_script(http, auth, content="Tip me on Cash App, {{name}}"))["script"]
    events = await events_of_tenant()

    single = await http.post(
        SEND, json={"recipientId": fan_id, "content": "Pay on VENMO"}, headers=auth
    )
    scripted = await http.post(
        SEND, json={"recipientId": fan_id, "scriptId": script["id"]}, headers=auth
    )
    batch = await http.post(
        "/api/onlyfans/messages/batch",
        json={"messages": [{"recipientId": fan_id, "content": "venmo?"}]},
        headers=auth,
    )
    campaign = await http.post(
        "/api/messages/bulk",
        json={"recipientIds": [fan_id], "content": "venmo {{name}}"},
        headers=auth,
    )

    for response, word in ((single, "venmo"), (scripted, "cash app"), (campaign, "venmo")):
        problem = assert_problem(response, 422)
        assert problem["field"] == "content"
        assert word in problem["detail"]
    assert batch.status_code == 202
    assert batch.json()["results"][0]["field"] == "content"
    assert batch.json()["failed"] == 1
    assert await events_of_tenant() == events
    # Whole words only: "venmos" and "cashapp" are other words.
    assert (
        await http.post(
            SEND, json={"recipientId": fan_id, "content": "no venmos, no cashapp"}, headers=auth
        )
    ).status_code == 202
    await catch_up()
    assert (await http.get(WORDS, headers=auth)).json() == {"words": ["venmo", "cash app"]}


async def test_another_accounts_words_are_neither_read_nor_applied_here(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: Any
) -> None:
    fan_id = await new_fan(http, auth)
    assert (await http.put(WORDS, json={"words": ["venmo"]}, headers=other_auth)).status_code == 200
    await catch_up()

    assert (await http.get(WORDS, headers=auth)).json() == {"words": []}
    sent = await http.post(SEND, json={"recipientId": fan_id, "content": "venmo"}, headers=auth)
    assert sent.status_code == 202


async def test_script_metrics_count_a_purchased_ppv_sent_from_it(
    http: httpx.AsyncClient, auth: Headers, container: Container, catch_up: Any, tenant: str
) -> None:
    ctx = CommandContext(tenant=tenant, actor="relay", correlation_id=f"test-{uuid.uuid4()}")
    fan_id = await new_fan(http, auth)
    script = (await new_script(http, auth, priceCents=1_500))["script"]
    unsold = await http.post(
        SEND, json={"recipientId": fan_id, "scriptId": script["id"]}, headers=auth
    )
    bought = await http.post(
        SEND, json={"recipientId": fan_id, "scriptId": script["id"]}, headers=auth
    )
    elsewhere = await http.post(
        SEND,
        json={"recipientId": fan_id, "content": "Not scripted", "priceCents": 900},
        headers=auth,
    )
    for response in (unsold, bought, elsewhere):
        assert response.status_code == 202, response.text
        await messages.record_sent(
            response.json()["messageId"], "of-1", ctx, store=container.events
        )
    for response, amount in ((bought, 1_500), (elsewhere, 900)):
        purchase = WebhookEvent(
            id=f"wh-{uuid.uuid4()}",
            type="message.purchased",
            account=tenant,
            data={"messageId": response.json()["messageId"], "amountCents": amount},
        )
        await handle_webhook(purchase, ctx, store=container.events, ids=container.ids)
    await catch_up()

    read = await http.get(f"{SCRIPTS}/{script['id']}", headers=auth)

    assert read.status_code == 200, read.text
    assert read.json()["script"]["metrics"] == {"sent": 2, "purchased": 1, "revenueCents": 1_500}


async def test_scripts_are_created_listed_a_page_at_a_time_changed_and_deleted(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: Any
) -> None:
    created = [
        (await new_script(http, auth, name=f"Script {n}", mediaUrls=[PPV]))["script"]
        for n in range(3)
    ]
    await new_script(http, other_auth)
    assert created[0]["mediaUrls"] == [PPV]
    await catch_up()

    first = (await http.get(SCRIPTS, params={"limit": 2}, headers=auth)).json()
    second = (
        await http.get(SCRIPTS, params={"limit": 2, "cursor": first["nextCursor"]}, headers=auth)
    ).json()
    assert [s["name"] for s in first["scripts"] + second["scripts"]] == [
        "Script 2",
        "Script 1",
        "Script 0",
    ]
    assert second["nextCursor"] is None
    assert first["scripts"][0]["metrics"] == {"sent": 0, "purchased": 0, "revenueCents": 0}

    changed = await http.patch(
        f"{SCRIPTS}/{created[0]['id']}", json={"content": "Night {{name}}"}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["script"]["content"] == "Night {{name}}"
    assert changed.json()["script"]["name"] == "Script 0"
    refused = await http.patch(
        f"{SCRIPTS}/{created[0]['id']}", json={"content": "Hi {{nick}}"}, headers=auth
    )
    assert assert_problem(refused, 422)["field"] == "content"
    deleted = await http.delete(f"{SCRIPTS}/{created[1]['id']}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    await catch_up()

    assert_problem(await http.get(f"{SCRIPTS}/{created[1]['id']}", headers=auth), 404)
    read = (await http.get(f"{SCRIPTS}/{created[0]['id']}", headers=auth)).json()["script"]
    assert (read["content"], read["version"]) == ("Night {{name}}", 2)
    fan_id = await new_fan(http, auth)
    gone = await http.post(
        SEND, json={"recipientId": fan_id, "scriptId": created[1]["id"]}, headers=auth
    )
    assert_problem(gone, 404)


async def test_a_member_without_send_ppv_sends_a_free_script_but_not_a_priced_one(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    from tests.integration.test_workspaces import _fan, _member

    role = await http.post(
        "/api/workspace/roles",
        json={"name": "texter", "permissions": ["crm:read", "messages:send"]},
        headers=auth,
    )
    assert role.status_code == 201, role.text
    fan = await _fan(http, auth, "dee")
    priced = (await new_script(http, auth, priceCents=1_500))["script"]["id"]
    free = (await new_script(http, auth))["script"]["id"]
    _, texter = await _member(http, auth, "texter")

    # The price its script gives is a PPV as much as one the request gives.
    refused = await http.post(SEND, json={"recipientId": fan, "scriptId": priced}, headers=texter)
    assert_problem(refused, 403)
    batch = await http.post(
        "/api/onlyfans/messages/batch",
        json={"messages": [{"recipientId": fan, "scriptId": priced}]},
        headers=texter,
    )
    assert_problem(batch, 403)
    for body in ({"scriptId": free}, {"scriptId": priced, "priceCents": 0}):
        sent = await http.post(SEND, json={"recipientId": fan, **body}, headers=texter)
        assert sent.status_code == 202, sent.text


async def test_a_workspace_script_is_used_from_each_of_its_accounts_and_no_one_elses(
    http: httpx.AsyncClient, auth: Headers, other_auth: Headers, catch_up: Any
) -> None:
    added = await http.post("/api/workspace/accounts", json={"name": "B"}, headers=auth)
    assert added.status_code == 201, added.text
    in_b = {**auth, "X-Account-Id": added.json()["accountId"]}
    shared = (await new_script(http, auth, name="Shared", scope="workspace"))["script"]
    private = (await new_script(http, auth, name="Mine"))["script"]
    assert (shared["scope"], private["scope"]) == ("workspace", "account")
    fan_in_b = await new_fan(http, in_b, name="Bea Stone")
    await catch_up()

    listed = (await http.get(SCRIPTS, headers=in_b)).json()["scripts"]
    assert [s["id"] for s in listed] == [shared["id"]]
    assert (await http.get(f"{SCRIPTS}/{shared['id']}", headers=in_b)).status_code == 200
    sent = await http.post(
        SEND, json={"recipientId": fan_in_b, "scriptId": shared["id"]}, headers=in_b
    )
    assert sent.status_code == 202, sent.text
    await catch_up()
    message = (await http.get(f"{CRM_MESSAGES}/{sent.json()['messageId']}", headers=in_b)).json()
    assert message["message"]["content"] == "Morning Bea, this one is for you"
    # The founding account's own script stays its own; another workspace sees neither.
    refused = await http.post(
        SEND, json={"recipientId": fan_in_b, "scriptId": private["id"]}, headers=in_b
    )
    assert_problem(refused, 404)
    assert_problem(await http.get(f"{SCRIPTS}/{shared['id']}", headers=other_auth), 404)
    stranger_fan = await new_fan(http, other_auth)
    stranger = await http.post(
        SEND, json={"recipientId": stranger_fan, "scriptId": shared["id"]}, headers=other_auth
    )
    assert_problem(stranger, 404)


async def test_a_member_outside_the_founding_account_writes_no_workspace_script(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    added = await http.post("/api/workspace/accounts", json={"name": "B"}, headers=auth)
    account_b = added.json()["accountId"]
    invite = await http.post(
        "/api/workspace/members", json={"role": "manager", "accounts": [account_b]}, headers=auth
    )
    accepted = await http.post(
        "/api/workspace/invites/accept", json={"token": invite.json()["inviteToken"]}
    )
    manager = {
        "Authorization": f"Bearer {accepted.json()['apiKey']}",
        "X-Account-Id": account_b,
    }
    body = {"name": "Shared", "content": "hi", "scope": "workspace"}
    assert_problem(await http.post(SCRIPTS, json=body, headers=manager), 403)
    own = await http.post(SCRIPTS, json={**body, "scope": "account"}, headers=manager)
    assert own.status_code == 201, own.text
