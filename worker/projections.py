"""The projector worker: one runner per projection, all following the log until stopped."""

from __future__ import annotations

import asyncio

import structlog

from adapters.bootstrap import Container, all_projections
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)


async def run_projectors(container: Container, stop: asyncio.Event) -> None:
    runners = [
        ProjectionRunner(container.projection_store, projection)
        for projection in all_projections()  # the core read models and the analytics
    ]
    log.info("projectors started", projections=[runner.name for runner in runners])
    await asyncio.gather(*(runner.run(stop) for runner in runners))
