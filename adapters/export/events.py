"""`crm export events`: the log, in commit order from where the last export stopped, as Parquet
files partitioned hive-style by UTC day and event type.

Each batch read from the store becomes one file per (day, type) it touches, named after its
first position, and then the checkpoint (commit order: transaction id, position) is replaced
atomically. A run stopped between the two writes the same batch again under the same names
(the batch starts at the same checkpoint), so nothing is doubled. Only a run with another
``--batch-size`` after such a stop could split that batch differently and leave some of its
rows twice; a checkpoint per batch keeps that to one batch. On S3 a PUT replaces an object
whole, as a rename does in a folder, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC

import pyarrow as pa
import pyarrow.parquet as pq

from adapters.export.destinations import Destination
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


async def read_checkpoint(destination: Destination) -> Checkpoint:
    found = await destination.read(CHECKPOINT_FILE)
    if found is None:
        return Checkpoint()
    fields = json.loads(found)
    return Checkpoint(int(fields["transaction_id"]), int(fields["position"]))


async def write_checkpoint(destination: Destination, checkpoint: Checkpoint) -> None:
    fields = {"transaction_id": checkpoint.transaction_id, "position": checkpoint.position}
    await destination.write(CHECKPOINT_FILE, json.dumps(fields).encode())


async def export_events(
    store: EventStore,
    pseudonyms: FanPseudonyms,
    destination: Destination,
    batch_size: int,
    compression: str = "zstd",
) -> ExportReport:
    started = time.perf_counter()
    checkpoint = await read_checkpoint(destination)
    events = files = written = 0
    while batch := await store.read_all(checkpoint, batch_size):
        for name, data in _batch_files(batch, pseudonyms, compression):
            await destination.write(name, data)
            files += 1
            written += len(data)
        events += len(batch)
        checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
        await write_checkpoint(destination, checkpoint)
    return ExportReport(events, files, written, time.perf_counter() - started, checkpoint)


def _batch_files(
    batch: list[RecordedEvent], pseudonyms: FanPseudonyms, compression: str
) -> list[tuple[str, bytes]]:
    groups: dict[tuple[str, str], list[RecordedEvent]] = {}
    for recorded in batch:
        day = recorded.recorded_at.astimezone(UTC).date().isoformat()
        groups.setdefault((day, recorded.event_type), []).append(recorded)
    files = []
    for (day, event_type), events in groups.items():
        rows = [event_row(recorded, pseudonyms) for recorded in events]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), sink, compression=compression)
        name = f"day={day}/type={event_type}/part-{events[0].position}.parquet"
        files.append((name, sink.getvalue().to_pybytes()))
    return files
