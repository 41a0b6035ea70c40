"""/api/crm/people over HTTP: fans of one account, on several platforms, as one person.

No projector runs in the background: ``catch_up`` applies what was committed. Every test
works in a tenant of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Container
from application.context import CommandContext
from application.webhooks import WebhookEvent, handle_webhook

PEOPLE = "/api/crm/people"
FANS = "/api/crm/fans"
SEND = "/api/onlyfans/messages/send"
PROBLEM_JSON = "application/problem+json"

Headers = dict[str, str]
CatchUp = Callable[[], Awaitable[int]]
EventCount = Callable[[], Awaitable[int]]


async def fan(http: httpx.AsyncClient, auth: Headers, **body: Any) -> int:
    body.setdefault("name", "Ann")
    response = await http.post(FANS, json=body, headers=auth)
    assert response.status_code == 201, response.text
    return int(response.json()["fan"]["id"])


async def person(http: httpx.AsyncClient, auth: Headers, *fan_ids: int) -> int:
    response = await http.post(PEOPLE, json={"fanIds": list(fan_ids)}, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["person"]["fanIds"] == list(fan_ids)
    return int(response.json()["person"]["id"])


async def view(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp, person_id: int
) -> dict[str, Any]:
    await catch_up()
    response = await http.get(f"{PEOPLE}/{person_id}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json()["person"])


async def suggestions(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> list[dict[str, Any]]:
    await catch_up()
    response = await http.get(f"{PEOPLE}/suggestions", headers=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["suggestions"])


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return dict(response.json())


async def test_fans_on_three_platforms_make_one_person_whose_value_is_their_sum(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    ann = await fan(http, auth, platform="onlyfans", handle="ann", valueCents=1_000)
    ann_fansly = await fan(http, auth, platform="fansly", handle="ann_f", valueCents=250)
    ann_patreon = await fan(http, auth, platform="patreon", name="Ann P", valueCents=5)
    person_id = await person(http, auth, ann, ann_fansly, ann_patreon)
    shown = await view(http, auth, catch_up, person_id)
    assert shown["id"] == person_id
    assert [(f["id"], f["platform"]) for f in shown["fans"]] == [
        (ann, "onlyfans"),
        (ann_fansly, "fansly"),
        (ann_patreon, "patreon"),
    ]
    assert shown["fans"][0]["handle"] == "ann"
    assert shown["lifetimeValueCents"] == 1_255
    listed = await http.get(PEOPLE, headers=auth)
    assert [p["id"] for p in listed.json()["people"]] == [person_id]


async def test_the_person_lists_conversations_on_every_platform_with_unread_counts(
    http: httpx.AsyncClient, auth: Headers, tenant: str, container: Container, catch_up: CatchUp
) -> None:
    on_onlyfans = await fan(http, auth, platform="onlyfans", name="Bo")
    on_fansly = await fan(http, auth, platform="fansly", name="Bo F")
    person_id = await person(http, auth, on_onlyfans, on_fansly)
    sent = await http.post(SEND, json={"recipientId": on_onlyfans, "content": "Hi"}, headers=auth)
    assert sent.status_code == 202, sent.text
    reply = WebhookEvent(
        id=uuid.uuid4().hex,
        type="message.received",
        account=tenant,
        data={"fanId": on_fansly, "text": "hello from fansly", "platformMessageId": "fy-1"},
    )
    ctx = CommandContext(tenant=tenant, actor="webhook", correlation_id="people-test")
    await handle_webhook(reply, ctx, store=container.events, ids=container.ids)
    shown = await view(http, auth, catch_up, person_id)
    by_fan = {c["fanId"]: c for c in shown["conversations"]}
    assert set(by_fan) == {on_onlyfans, on_fansly}
    assert (by_fan[on_onlyfans]["platform"], by_fan[on_onlyfans]["unreadCount"]) == ("onlyfans", 0)
    assert (by_fan[on_fansly]["platform"], by_fan[on_fansly]["unreadCount"]) == ("fansly", 1)
    assert all(c["lastMessageAt"] is not None for c in shown["conversations"])


async def test_people_are_listed_newest_first_a_page_at_a_time(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    fans = [await fan(http, auth, platform=p) for p in ("onlyfans", "fansly") * 3]
    made = [await person(http, auth, *fans[n : n + 2]) for n in (0, 2, 4)]
    await catch_up()
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await http.get(PEOPLE, params=params, headers=auth)).json()
        seen += [p["id"] for p in page["people"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


async def test_a_fan_of_one_person_is_refused_by_another_until_unlinked(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    a, b, c, d = [await fan(http, auth, platform=p) for p in ("onlyfans", "fansly") * 2]
    first, second = await person(http, auth, a, b), await person(http, auth, c, d)
    taken = await http.post(f"{PEOPLE}/{second}/fans", json={"fanId": a}, headers=auth)
    assert assert_problem(taken, 409)["personId"] == first
    assert (await http.delete(f"{PEOPLE}/{first}/fans/{a}", headers=auth)).status_code == 200
    moved = await http.post(f"{PEOPLE}/{second}/fans", json={"fanId": a}, headers=auth)
    assert moved.json()["person"]["fanIds"] == [c, d, a]


async def test_a_fan_is_unlinked_and_linked_again_by_hand(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    a, b, c = [
        await fan(http, auth, platform=p, valueCents=100) for p in ("onlyfans", "fansly", "patreon")
    ]
    person_id = await person(http, auth, a, b)
    added = await http.post(f"{PEOPLE}/{person_id}/fans", json={"fanId": c}, headers=auth)
    assert added.status_code == 200, added.text
    assert added.json()["person"]["fanIds"] == [a, b, c]
    removed = await http.delete(f"{PEOPLE}/{person_id}/fans/{a}", headers=auth)
    assert removed.status_code == 200, removed.text
    shown = await view(http, auth, catch_up, person_id)
    assert [f["id"] for f in shown["fans"]] == [b, c]
    assert shown["lifetimeValueCents"] == 200
    again = await http.delete(f"{PEOPLE}/{person_id}/fans/{a}", headers=auth)
    assert_problem(again, 404)


async def test_handles_that_match_across_platforms_are_suggested_until_linked(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    of = await fan(http, auth, platform="onlyfans", handle="@Kira")
    fy = await fan(http, auth, platform="fansly", handle="kira")
    await fan(http, auth, platform="fansly", handle="someone_else")
    found = await suggestions(http, auth, catch_up)
    assert [(s["matchedBy"], [f["id"] for f in s["fans"]]) for s in found] == [
        (["handle"], [of, fy])
    ]
    await person(http, auth, of, fy)
    assert await suggestions(http, auth, catch_up) == []


async def test_emails_that_match_across_platforms_are_suggested_but_not_on_one_platform(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    of = await fan(http, auth, platform="onlyfans", name="Lu", email="Lu@Example.com")
    pa = await fan(http, auth, platform="patreon", name="Lucia", email="lu@example.com")
    await fan(http, auth, platform="onlyfans", name="Mo", email="mo@example.com")
    await fan(http, auth, platform="onlyfans", name="Mo again", email="mo@example.com")
    found = await suggestions(http, auth, catch_up)
    assert [(s["matchedBy"], [f["id"] for f in s["fans"]]) for s in found] == [
        (["email"], [of, pa])
    ]


async def test_a_fan_linked_by_two_concurrent_requests_joins_one_person_and_the_other_is_409(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    shared = await fan(http, auth, platform="onlyfans")
    one, two = await fan(http, auth, platform="fansly"), await fan(http, auth, platform="patreon")
    answers = await asyncio.gather(
        http.post(PEOPLE, json={"fanIds": [shared, one]}, headers=auth),
        http.post(PEOPLE, json={"fanIds": [shared, two]}, headers=auth),
    )
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    [refused] = [r for r in answers if r.status_code == 409]
    body = assert_problem(refused, 409)
    assert body["fanId"] == shared
    await catch_up()
    listed = (await http.get(PEOPLE, headers=auth)).json()["people"]
    assert [[f["id"] for f in p["fans"] if f["id"] == shared] for p in listed] == [[shared]]


async def test_another_accounts_fans_and_people_are_refused_and_nothing_is_recorded(
    http: httpx.AsyncClient,
    auth: Headers,
    other_auth: Headers,
    events_of_tenant: EventCount,
    catch_up: CatchUp,
) -> None:
    mine = await fan(http, auth, platform="onlyfans")
    theirs = await fan(http, other_auth, platform="fansly")
    their_other = await fan(http, other_auth, platform="patreon")
    their_person = await person(http, other_auth, theirs, their_other)
    before = await events_of_tenant()
    mixed = await http.post(PEOPLE, json={"fanIds": [mine, theirs]}, headers=auth)
    assert assert_problem(mixed, 422)["detail"].endswith(f"fan {theirs} not found")
    await catch_up()
    assert_problem(await http.get(f"{PEOPLE}/{their_person}", headers=auth), 404)
    linking = await http.post(f"{PEOPLE}/{their_person}/fans", json={"fanId": mine}, headers=auth)
    assert_problem(linking, 404)
    unlinking = await http.delete(f"{PEOPLE}/{their_person}/fans/{theirs}", headers=auth)
    assert_problem(unlinking, 404)
    assert await events_of_tenant() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"fanIds": "1,2"}, 400),
        ({"fanIds": [1]}, 422),
        ({"fanIds": ["1", "2"]}, 400),
        ({"fanIds": [1, 2], "extra": True}, 400),
        ({"fanIds": [0, 1]}, 422),
        ({"fanIds": [2**64, 1]}, 422),
        ({"fanIds": list(range(1, 52))}, 422),
        ("same", 422),
    ],
    ids=[
        "empty",
        "text",
        "one",
        "strings",
        "unknown-field",
        "zero",
        "too-big",
        "too-many",
        "same-fan-twice",
    ],
)
async def test_bad_input_is_a_problem_and_records_nothing(
    http: httpx.AsyncClient,
    auth: Headers,
    events_of_tenant: EventCount,
    body: Any,
    status: int,
) -> None:
    if body == "same":
        one = await fan(http, auth)
        body = {"fanIds": [one, one]}
    before = await events_of_tenant()
    assert_problem(await http.post(PEOPLE, json=body, headers=auth), status)
    assert_problem(await http.post(f"{PEOPLE}/1/fans", json={"fanId": "x"}, headers=auth), 400)
    assert await events_of_tenant() == before


async def test_an_erased_fan_leaves_the_persons_view_with_its_name_and_value(
    http: httpx.AsyncClient, auth: Headers, catch_up: CatchUp
) -> None:
    kept = await fan(http, auth, platform="onlyfans", name="Kept", valueCents=300)
    gone = await fan(
        http, auth, platform="fansly", name="Secret Name", handle="secret_h", valueCents=700
    )
    opened = await http.post("/api/crm/conversations", json={"fanId": gone}, headers=auth)
    assert opened.status_code in (200, 201), opened.text
    person_id = await person(http, auth, kept, gone)
    assert (await view(http, auth, catch_up, person_id))["lifetimeValueCents"] == 1_000
    erased = await http.delete(f"{FANS}/{gone}", params={"erase": "true"}, headers=auth)
    assert erased.status_code == 200, erased.text
    shown = await view(http, auth, catch_up, person_id)
    assert [f["id"] for f in shown["fans"]] == [kept]
    assert shown["lifetimeValueCents"] == 300
    assert shown["conversations"] == []
    listed = await http.get(PEOPLE, headers=auth)
    assert "Secret Name" not in listed.text
    assert "secret_h" not in listed.text
    # It can still be taken out of the person by hand; never put back in.
    assert (await http.delete(f"{PEOPLE}/{person_id}/fans/{gone}", headers=auth)).status_code == 200
    again = await http.post(f"{PEOPLE}/{person_id}/fans", json={"fanId": gone}, headers=auth)
    assert assert_problem(again, 422)["field"] == "fanId"
