"""`crm export events`: the log, in commit order from where the last export stopped, as Parquet
files partitioned hive-style by UTC day and event type.

Each batch read from the store becomes one file per (day, type) it touches, named after its
first position, and then the checkpoint (commit order: transaction id, position) is replaced
atomically. A run stopped between the two writes the same batch again under the same names
(the batch starts at the same checkpoint), so nothing is doubled; a run with another
``--batch-size`` after such a stop could split it differently, hence a checkpoint per batch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from adapters.export.event_rows import SCHEMA, event_row
from adapters.export.pseudonyms import FanPseudonyms
from application.ports import Checkpoint, EventStore, RecordedEvent

CHECKPOINT_FILE = "_checkpoint.json"


@dataclass(frozen=True)
class ExportReport:
    events: int
    files: int
    bytes: int
    seconds: float
    checkpoint: Checkpoint

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return (
            f"exported {self.events} events in {self.files} files, {self.bytes} bytes,"
            f" {self.seconds:.1f} s ({rate:.0f} events/s); checkpoint"
            f" {self.checkpoint.transaction_id}:{self.checkpoint.position}"
        )


def read_checkpoint(target: Path) -> Checkpoint:
    path = target / CHECKPOINT_FILE
    if not path.exists():
        return Checkpoint()
    found = json.loads(path.read_text())
    return Checkpoint(int(found["transaction_id"]), int(found["position"]))


def write_checkpoint(target: Path, checkpoint: Checkpoint) -> None:
    temporary = target / (CHECKPOINT_FILE + ".tmp")
    temporary.write_text(
        json.dumps({"transaction_id": checkpoint.transaction_id, "position": checkpoint.position})
    )
    os.replace(temporary, target / CHECKPOINT_FILE)


async def export_events(
    store: EventStore,
    pseudonyms: FanPseudonyms,
    target: Path,
    batch_size: int,
    compression: str = "zstd",
) -> ExportReport:
    started = time.perf_counter()
    target.mkdir(parents=True, exist_ok=True)
    checkpoint = read_checkpoint(target)
    events = files = written = 0
    while batch := await store.read_all(checkpoint, batch_size):
        for path in _write_batch(batch, pseudonyms, target, compression):
            files += 1
            written += path.stat().st_size
        events += len(batch)
        checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        write_checkpoint(target, checkpoint)
    return ExportReport(events, files, written, time.perf_counter() - started, checkpoint)


def _write_batch(
    batch: list[RecordedEvent], pseudonyms: FanPseudonyms, target: Path, compression: str
) -> list[Path]:
    groups: dict[tuple[str, str], list[RecordedEvent]] = {}
    for recorded in batch:
        day = recorded.recorded_at.astimezone(UTC).date().isoformat()
        groups.setdefault((day, recorded.event_type), []).append(recorded)
    paths = []
    for (day, event_type), events in groups.items():
        folder = target / f"day={day}" / f"type={event_type}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{events[0].position}.parquet"
        rows = [event_row(recorded, pseudonyms) for recorded in events]
        temporary = path.with_suffix(".parquet.tmp")
        pq.write_table(
            pa.Table.from_pylist(rows, schema=SCHEMA), temporary, compression=compression
        )
        os.replace(temporary, path)
        paths.append(path)
    return paths
