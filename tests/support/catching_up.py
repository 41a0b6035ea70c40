"""Running projectors in a test until they have applied everything committed so far."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from adapters import bootstrap
from application.ports import Checkpoint
from projections.base import Projection
from projections.runner import ProjectionRunner


async def catch_up_to_head(
    container: bootstrap.Container, projections: Sequence[Projection], timeout: float = 30
) -> None:
    """Each of ``projections`` up to the newest event committed now. One pass may stop short:
    a projector reads only below the oldest transaction open anywhere on the server, and
    other tests' databases share it."""
    row = await container.pool.fetchrow(
        "SELECT transaction_id, position FROM events"
        " ORDER BY transaction_id DESC, position DESC LIMIT 1"
    )
    head = Checkpoint(row["transaction_id"], row["position"]) if row else Checkpoint()
    deadline = time.monotonic() + timeout
    for projection in projections:
        runner = ProjectionRunner(container.projection_store, projection)
        await runner.catch_up()
        while await container.projection_store.checkpoint(runner.name) < head:
            assert time.monotonic() < deadline, f"{runner.name} never reached {head}"
            await asyncio.sleep(0.01)
            await runner.catch_up()
