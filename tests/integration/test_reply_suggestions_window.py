"""Reply suggestions search a bounded window, the account's latest replies that worked: a
request's cost does not grow with the account's history, and what worked long ago and not
since is not suggested."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from adapters.bootstrap import Container
from adapters.postgres.suggestions_read_model import PostgresSuggestionIndex
from tests.support.campaigns import free_port, served_api
from tests.support.suggestions import History

CatchUp = Callable[[], Awaitable[int]]
Headers = dict[str, str]


@pytest.fixture
async def history(container: Container, auth: Headers, tenant: str) -> AsyncIterator[History]:
    async with (
        served_api(container, free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield History(container, client, auth, tenant)


async def test_only_the_latest_replies_that_worked_are_searched(
    container: Container, tenant: str, history: History, catch_up: CatchUp
) -> None:
    # Oldest first: each answers "good morning" and got a reply.
    for name, reply in (("Gus", "Morning, coffee?"), ("Hal", "Hey you, up early?")):
        fan = await history.fan(name)
        await history.fan_writes(fan, "good morning")
        await history.account_writes(fan, reply)
        await history.fan_writes(fan, "yes")
    await catch_up()

    everything = PostgresSuggestionIndex(container.pool)
    latest = PostgresSuggestionIndex(container.pool, window=1)

    found = await everything.candidates(tenant, "good morning", 3)
    assert sorted(c.template for c in found) == ["Hey you, up early?", "Morning, coffee?"]
    # Matched, then completed from the rest: both read the same window.
    assert [c.template for c in await latest.candidates(tenant, "good morning", 3)] == [
        "Hey you, up early?"
    ]
    assert [c.template for c in await latest.candidates(tenant, "🔥🔥", 3)] == [
        "Hey you, up early?"
    ]
