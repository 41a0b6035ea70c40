"""The sender asks a campaign's status at most once per TTL (one question at a time per
campaign), and sees a change after it."""

from __future__ import annotations

import asyncio

import pytest

from worker.sender import CachedCampaignStatus


async def test_a_status_is_read_once_per_ttl_then_again() -> None:
    statuses = {7: "active"}
    reads: list[int] = []

    async def read(campaign_id: int) -> str | None:
        reads.append(campaign_id)
        return statuses.get(campaign_id)

    cached = CachedCampaignStatus(read, ttl=0.05)
    assert [await cached(7) for _ in range(5)] == ["active"] * 5
    assert reads == [7]
    statuses[7] = "paused"
    await asyncio.sleep(0.06)
    assert await cached(7) == "paused"
    assert await cached(8) is None
    assert reads == [7, 7, 8]


async def test_lookers_at_one_campaign_while_it_is_asked_share_that_one_question() -> None:
    asked, answer = asyncio.Event(), asyncio.Event()
    reads: list[int] = []

    async def read(campaign_id: int) -> str | None:
        reads.append(campaign_id)
        asked.set()
        await answer.wait()
        return "paused"

    cached = CachedCampaignStatus(read, ttl=60.0)
    lookers = [asyncio.create_task(cached(7)) for _ in range(20)]
    async with asyncio.timeout(5):
        await asked.wait()
        answer.set()
        assert await asyncio.gather(*lookers) == ["paused"] * 20
    assert reads == [7]


async def test_a_question_that_failed_is_asked_again_by_the_next_look() -> None:
    answers: list[str | Exception] = [ConnectionError("database away"), "active"]

    async def read(campaign_id: int) -> str | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cached = CachedCampaignStatus(read, ttl=60.0)
    with pytest.raises(ConnectionError):
        await cached(7)
    assert await cached(7) == "active"
