"""The log read, and exported, up to its newest committed event, for tests on a server that
other tests' databases share: a read of the log (``store.head()`` included) stops below the
oldest transaction open on the server, so "what a reader can reach now" may stop short."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from adapters import bootstrap
from adapters.crypto import MasterKey
from adapters.export.destinations import Destination, LocalFolder
from adapters.export.events import ExportReport, export_events, read_checkpoint
from adapters.export.pseudonyms import load_pseudonyms
from application.ports import Checkpoint, RecordedEvent
from tests.support.settings import TEST_MASTER_KEY


async def committed_head(container: bootstrap.Container) -> Checkpoint:
    """The newest committed event, whether or not a reader can reach it yet."""
    row = await container.pool.fetchrow(
        "SELECT transaction_id, position FROM events"
        " ORDER BY transaction_id DESC, position DESC LIMIT 1"
    )
    return Checkpoint() if row is None else Checkpoint(row["transaction_id"], row["position"])


async def read_log(container: bootstrap.Container) -> list[RecordedEvent]:
    """The whole log as the store reads it, up to the newest committed event."""
    head = await committed_head(container)
    found: list[RecordedEvent] = []
    checkpoint = Checkpoint()
    deadline = time.monotonic() + 30
    while checkpoint < head:
        assert time.monotonic() < deadline, f"the log was never readable up to {head}"
        batch = await container.events.read_all(checkpoint, 500)
        if not batch:
            await asyncio.sleep(0.01)
            continue
        found += batch
        checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return found


async def export_to_head(
    container: bootstrap.Container, target: Path | Destination
) -> list[ExportReport]:
    """`crm export events`'s work, run until its checkpoint holds the newest committed event."""
    destination = LocalFolder(target) if isinstance(target, Path) else target
    head = await committed_head(container)
    pseudonyms = await load_pseudonyms(container.pool, [MasterKey.parse(TEST_MASTER_KEY)])
    reports: list[ExportReport] = []
    deadline = time.monotonic() + 30
    while not reports or await read_checkpoint(destination) < head:
        assert time.monotonic() < deadline, f"the export never reached {head}"
        if reports:
            await asyncio.sleep(0.01)
        reports.append(
            await export_events(
                container.events, pseudonyms, destination, batch_size=7, compression="none"
            )
        )
    return reports
