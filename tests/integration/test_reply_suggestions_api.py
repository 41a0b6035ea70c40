"""GET /api/crm/conversations/{id}/suggestions over real HTTP (uvicorn on a port), retrieval
only: ranked by outcome, filled for the fan, the tenant's own, and nothing of an erased fan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from adapters import bootstrap
from adapters.bootstrap import Container
from adapters.postgres.api_keys import create_api_key
from adapters.postgres.rebuild import rebuild
from projections.runner import ProjectionRunner
from projections.suggestions import SuggestionsProjection
from tests.support.campaigns import free_port, served_api
from tests.support.suggestions import History, worked_history

CatchUp = Callable[[], Awaitable[int]]
Headers = dict[str, str]


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        served_api(container, free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def history(container: Container, api: httpx.AsyncClient, auth: Headers, tenant: str) -> History:
    return History(container, api, auth, tenant)


def suggestions_of(conversation_id: int) -> str:
    return f"/api/crm/conversations/{conversation_id}/suggestions"


async def test_a_bought_reply_ranks_above_a_replied_one_and_each_is_filled_for_the_fan(
    api: httpx.AsyncClient, auth: Headers, history: History, catch_up: CatchUp
) -> None:
    await worked_history(history)
    dan = await history.fan("Dan Brown", "dan_b")
    await history.fan_writes(dan, "hey, what are you doing tonight?")
    conversation = await history.conversation(dan)
    await catch_up()

    response = await api.get(suggestions_of(conversation), headers=auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fanMessageId"] == await history.last_fan_message(conversation)
    assert [s["content"] for s in body["suggestions"]] == [
        "Thinking of you Dan, want to see what I am doing?",
        "Just relaxing Dan, and you?",
        "Thank you @dan_b!",
    ]
    assert [s["basedOn"]["outcome"] for s in body["suggestions"]] == [
        "purchased",
        "replied",
        "replied",
    ]
    assert {s["source"] for s in body["suggestions"]} == {"history"}
    scores = [s["score"] for s in body["suggestions"]]
    assert scores[0] > scores[1] > scores[2] == 0  # the last shares no word: it completes


async def test_the_same_reply_used_twice_is_one_suggestion_counting_both_uses(
    api: httpx.AsyncClient, auth: Headers, history: History, catch_up: CatchUp
) -> None:
    for name in ("Gus", "Hal"):
        fan = await history.fan(name)
        await history.fan_writes(fan, "good morning")
        await history.account_writes(fan, f"Morning {name}, sleep well?")
        await history.fan_writes(fan, "yes")
    ivy = await history.fan("Ivy")
    await history.fan_writes(ivy, "good morning!")
    conversation = await history.conversation(ivy)
    await catch_up()

    body = (await api.get(suggestions_of(conversation), headers=auth)).json()

    assert [(s["content"], s["basedOn"]["uses"]) for s in body["suggestions"]] == [
        ("Morning Ivy, sleep well?", 2)
    ]


async def test_another_tenants_conversation_is_not_found_and_its_history_never_suggested(
    api: httpx.AsyncClient,
    auth: Headers,
    history: History,
    container: Container,
    catch_up: CatchUp,
) -> None:
    await worked_history(history)
    dan = await history.fan("Dan")
    await history.fan_writes(dan, "what are you doing tonight?")
    conversation = await history.conversation(dan)
    other_tenant = f"user-{uuid.uuid4().hex[:12]}"
    key, _ = await create_api_key(container.pool, user_id=other_tenant, role="creator")
    other_auth = {"Authorization": f"Bearer {key}"}
    other = History(container, api, other_auth, other_tenant)
    zoe = await other.fan("Zoe")
    await other.fan_writes(zoe, "what are you doing tonight?")
    own = await other.conversation(zoe)
    await catch_up()

    refused = await api.get(suggestions_of(conversation), headers=other_auth)
    theirs = await api.get(suggestions_of(own), headers=other_auth)

    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert theirs.status_code == 200
    assert theirs.json()["suggestions"] == []


async def test_an_erased_fans_words_and_replies_leave_the_index_and_the_suggestions(
    api: httpx.AsyncClient,
    auth: Headers,
    history: History,
    container: Container,
    catch_up: CatchUp,
) -> None:
    ann = await history.fan("Ann", "ann_rose")
    await history.fan_writes(ann, "what are you doing tonight?")
    bought = await history.account_writes(ann, "Thinking of you Ann, a private show?", 1500)
    await history.fan_buys(bought, 1500)
    dan = await history.fan("Dan")
    await history.fan_writes(dan, "what are you doing tonight?")
    conversation = await history.conversation(dan)
    anns = await history.conversation(ann)
    await catch_up()
    before = (await api.get(suggestions_of(conversation), headers=auth)).json()
    assert [s["content"] for s in before["suggestions"]] == ["Thinking of you Dan, a private show?"]

    erased = await api.delete(f"/api/crm/fans/{ann}", params={"erase": "true"}, headers=auth)
    assert erased.status_code == 200, erased.text
    await catch_up()

    after = (await api.get(suggestions_of(conversation), headers=auth)).json()
    of_erased = await api.get(suggestions_of(anns), headers=auth)
    assert after["suggestions"] == []
    assert of_erased.json() == {"suggestions": [], "fanMessageId": None}
    for table in ("suggestion_replies", "suggestion_threads", "suggestion_fans"):
        kept = await container.pool.fetchval(f"SELECT count(*) FROM {table} WHERE fan_id = $1", ann)
        assert kept == 0, table


async def test_a_rebuild_after_an_erasure_keeps_nothing_of_the_fan_and_suggests_the_same(
    fresh: Container, tenant: str
) -> None:
    key, _ = await create_api_key(fresh.pool, user_id=tenant, role="creator")
    auth = {"Authorization": f"Bearer {key}"}
    async with (
        served_api(fresh, free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as api,
    ):
        history = History(fresh, api, auth, tenant)
        ann = (await worked_history(history))["Ann"]
        erased = await api.delete(f"/api/crm/fans/{ann}", params={"erase": "true"}, headers=auth)
        assert erased.status_code == 200, erased.text
        dan = await history.fan("Dan")
        await history.fan_writes(dan, "what are you doing tonight?")
        conversation = await history.conversation(dan)
        for projection in bootstrap.core_projections():
            await ProjectionRunner(fresh.projection_store, projection).catch_up()
        live = (await api.get(suggestions_of(conversation), headers=auth)).json()

        await rebuild(fresh.pool, fresh.projection_store, [SuggestionsProjection()])

        rebuilt = (await api.get(suggestions_of(conversation), headers=auth)).json()
    assert rebuilt == live
    assert "Thinking of you Dan, want to see what I am doing?" not in [
        s["content"] for s in rebuilt["suggestions"]
    ]
    assert [s["content"] for s in rebuilt["suggestions"]][:1] == ["Just relaxing Dan, and you?"]
    for table in SuggestionsProjection.tables:
        kept = await fresh.pool.fetchval(f"SELECT count(*) FROM {table} WHERE fan_id = $1", ann)
        assert kept == 0, table
