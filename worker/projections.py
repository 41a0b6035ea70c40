"""The projector worker: one runner per core projection, all following the log until stopped."""

from __future__ import annotations

import asyncio

import structlog

from adapters.bootstrap import Container, core_projections
from projections.runner import ProjectionRunner

log = structlog.get_logger(__name__)


async def run_projectors(container: Container, stop: asyncio.Event) -> None:
    runners = [
        ProjectionRunner(container.projection_store, projection)
        for projection in core_projections()
    ]
    log.info("projectors started", projections=[runner.name for runner in runners])
    await asyncio.gather(*(runner.run(stop) for runner in runners))
