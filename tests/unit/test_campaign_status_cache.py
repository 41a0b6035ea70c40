"""The sender asks a campaign's status at most once per TTL, and sees a change after it."""

from __future__ import annotations

import asyncio

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
