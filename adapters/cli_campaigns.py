"""`crm campaigns status`: every open campaign's fan-out progress, and whether it is stalled."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from adapters.postgres.campaign_stalls import CampaignState, open_campaign_states


async def status_command(database_url: str, out: TextIO = sys.stdout) -> int:
    """Prints the table; returns how many campaigns are stalled (the exit status says so)."""
    from adapters.postgres.pool import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        states = await open_campaign_states(pool)
    finally:
        await pool.close()
    print_states(states, out)
    return sum(1 for s in states if s.stalled_reason is not None)


def print_states(states: list[CampaignState], out: TextIO) -> None:
    print(
        f"{'campaign':>9} {'tenant':<24} {'status':<8} {'queued':>8} {'skipped':>8}"
        f" {'of':>8}  {'fan-out':<9} stalled",
        file=out,
    )
    now = datetime.now(UTC)
    for s in states:
        stalled = "-"
        if s.stalled_reason is not None and s.stalled_since is not None:
            minutes = (now - s.stalled_since).total_seconds() / 60
            stalled = f"STALLED {minutes:.0f} min, {s.stalled_rounds} rounds: {s.stalled_reason}"
        print(
            f"{s.campaign_id:>9} {s.tenant[:24]:<24} {s.status:<8} {s.queued:>8}"
            f" {s.skipped:>8} {s.total_recipients:>8}  {'done' if s.fanned_out else 'running':<9}"
            f" {stalled}",
            file=out,
        )
