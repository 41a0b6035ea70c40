"""Reply suggestions with a language model: the app over real HTTP, calling a local server that
speaks the chat completions protocol. Its drafts answer when it works; on a timeout, a 500 or a
malformed answer the retrieved replies do. What it is sent names no fan and carries no id."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post

from adapters import bootstrap
from adapters.bootstrap import Container
from adapters.postgres.api_keys import create_api_key
from projections.runner import ProjectionRunner
from tests.support.campaigns import free_port, served_api
from tests.support.settings import settings_for
from tests.support.suggestions import History, worked_history

REPEATED = "Thinking of you {{first_name}}, want to see what I am doing?"
DRAFTS = ["Hey {{first_name}}, tonight is all yours", "Guess what I am doing, {{first_name}}"]


@dataclass
class ChatServer:
    """What the fake model answers (``mode``), and every request body it received."""

    mode: str = "ok"
    bodies: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    # The slow mode holds its answer until the test ends: past any client's timeout.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Litestar:
        @post("/v1/chat/completions", status_code=200)
        async def complete(request: Request[Any, Any, Any]) -> Response[Any]:
            raw = await request.body()
            self.raw.append(raw)
            self.bodies.append(json.loads(raw))
            self.authorizations.append(request.headers.get("authorization", ""))
            if self.mode == "slow":
                await self.release.wait()
            if self.mode == "error":
                return Response({"error": {"message": "overloaded"}}, status_code=500)
            if self.mode == "malformed":
                return Response({"choices": [{"message": {"content": "Sure! Here you go"}}]})
            if self.mode == "no choices":
                return Response({"id": "cmpl-1", "choices": []})
            drafts = [REPEATED, DRAFTS[0]] if self.mode == "repeats" else DRAFTS
            content = json.dumps(drafts)
            return Response(
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )

        return Litestar([complete])


@pytest.fixture
async def chat() -> AsyncIterator[tuple[ChatServer, str]]:
    server = ChatServer()
    async with served_api(None, free_port(), app=server.app()) as url:  # type: ignore[arg-type]
        try:
            yield server, f"{url}/v1"
        finally:
            server.release.set()


@pytest.fixture
async def drafting(database_url: str, chat: tuple[ChatServer, str]) -> AsyncIterator[Container]:
    """A container whose suggestions ask the chat server, with a short timeout."""
    settings = settings_for(
        database_url,
        pool_min_size=1,
        pool_max_size=4,
        llm_url=chat[1],
        llm_api_key="sk-test",
        llm_model="tiny-chat",
        llm_timeout=0.5,
    )
    built = await bootstrap.build(settings)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def api(drafting: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        served_api(drafting, free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
async def history(drafting: Container, api: httpx.AsyncClient) -> History:
    tenant = f"user-{uuid.uuid4().hex[:12]}"
    key, _ = await create_api_key(drafting.pool, user_id=tenant, role="creator")
    return History(drafting, api, {"Authorization": f"Bearer {key}"}, tenant)


@pytest.fixture
def caught_up(drafting: Container) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        for projection in bootstrap.core_projections():
            await ProjectionRunner(drafting.projection_store, projection).catch_up()

    return run


async def dans_conversation(history: History) -> tuple[int, int]:
    await worked_history(history)
    dan = await history.fan("Dan Brown", "dan_b")
    await history.fan_writes(dan, "Dan here, what are you doing tonight?")
    return dan, await history.conversation(dan)


async def test_the_models_drafts_answer_first_filled_for_the_fan(
    api: httpx.AsyncClient,
    history: History,
    chat: tuple[ChatServer, str],
    caught_up: Callable[[], Awaitable[None]],
) -> None:
    _, conversation = await dans_conversation(history)
    await caught_up()

    response = await api.get(
        f"/api/crm/conversations/{conversation}/suggestions", headers=history.auth
    )

    assert response.status_code == 200, response.text
    suggestions = response.json()["suggestions"]
    assert [(s["content"], s["source"]) for s in suggestions] == [
        ("Hey Dan, tonight is all yours", "llm"),
        ("Guess what I am doing, Dan", "llm"),
        ("Thinking of you Dan, want to see what I am doing?", "history"),
    ]
    server = chat[0]
    assert server.authorizations == ["Bearer sk-test"]
    assert server.bodies[0]["model"] == "tiny-chat"


async def test_what_the_model_is_sent_names_no_fan_and_carries_no_id(
    api: httpx.AsyncClient,
    history: History,
    chat: tuple[ChatServer, str],
    caught_up: Callable[[], Awaitable[None]],
) -> None:
    dan, conversation = await dans_conversation(history)
    await caught_up()
    message_id = await history.last_fan_message(conversation)

    await api.get(f"/api/crm/conversations/{conversation}/suggestions", headers=history.auth)

    (raw,) = chat[0].raw
    sent = raw.decode()
    prompt = json.dumps(chat[0].bodies[0]["messages"])
    assert "{{first_name}} here, what are you doing tonight?" in prompt  # the fan unnamed
    assert "Thinking of you {{first_name}}" in prompt  # the candidates, as templates
    for personal in ("Dan", "Brown", "dan_b", "Ann", "Bea", "cat_c"):
        assert personal.lower() not in sent.lower(), personal
    for identifier in (dan, conversation):
        assert not re.search(rf"(?<![\w.]){identifier}(?![\w.])", sent), identifier
    assert message_id not in sent
    assert history.ctx.tenant not in sent
    assert set(chat[0].bodies[0]) == {"model", "messages"}


@pytest.mark.parametrize("mode", ["slow", "error", "malformed", "no choices"])
async def test_when_the_model_fails_the_retrieved_replies_answer(
    mode: str,
    api: httpx.AsyncClient,
    history: History,
    chat: tuple[ChatServer, str],
    caught_up: Callable[[], Awaitable[None]],
) -> None:
    chat[0].mode = mode
    _, conversation = await dans_conversation(history)
    await caught_up()

    response = await api.get(
        f"/api/crm/conversations/{conversation}/suggestions", headers=history.auth
    )

    assert response.status_code == 200, response.text
    suggestions = response.json()["suggestions"]
    assert [s["source"] for s in suggestions] == ["history"] * 3
    assert suggestions[0]["content"] == "Thinking of you Dan, want to see what I am doing?"
    assert len(chat[0].bodies) == 1  # it was asked, and failed


async def test_the_model_is_never_asked_about_an_erased_fan(
    api: httpx.AsyncClient,
    history: History,
    chat: tuple[ChatServer, str],
    caught_up: Callable[[], Awaitable[None]],
) -> None:
    dan, conversation = await dans_conversation(history)
    erased = await history.api.delete(
        f"/api/crm/fans/{dan}", params={"erase": "true"}, headers=history.auth
    )
    assert erased.status_code == 200, erased.text
    await caught_up()

    response = await api.get(
        f"/api/crm/conversations/{conversation}/suggestions", headers=history.auth
    )

    assert response.json() == {"suggestions": [], "fanMessageId": None}
    assert chat[0].bodies == []


async def test_a_draft_that_repeats_a_retrieved_reply_is_that_reply_with_its_evidence(
    api: httpx.AsyncClient,
    history: History,
    chat: tuple[ChatServer, str],
    caught_up: Callable[[], Awaitable[None]],
) -> None:
    chat[0].mode = "repeats"
    _, conversation = await dans_conversation(history)
    await caught_up()

    response = await api.get(
        f"/api/crm/conversations/{conversation}/suggestions", headers=history.auth
    )

    suggestions = response.json()["suggestions"]
    assert [(s["content"], s["source"]) for s in suggestions] == [
        ("Hey Dan, tonight is all yours", "llm"),
        ("Thinking of you Dan, want to see what I am doing?", "history"),
        ("Just relaxing Dan, and you?", "history"),
    ]
    assert suggestions[1]["basedOn"]["outcome"] == "purchased"
