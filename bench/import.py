"""CSV import of fans through the HTTP endpoint: rows per second and the server's peak memory.

    uv run python bench/import.py                          # 100,000 and 1,000,000 rows
    uv run python bench/import.py --rows 100000 --batch-size 2000
    DATABASE_URL=postgresql://... uv run python bench/import.py

The API runs as in production, in a child process (``crm serve``, one uvicorn worker) over a
fresh, migrated scratch database (embedded Postgres unless DATABASE_URL is set). For each size
a CSV file is generated on disk (handle, display name, email, "$1,234.56" money, two tags, a
short note: about 110 bytes a row) and POSTed as multipart/form-data, streamed from disk, to
``/api/onlyfans/import/csv`` (a new tenant each time, so every row is an insert). Then the
same file is imported a second time (every row found again and skipped).

Printed per run: rows, seconds, rows/s, and CPU seconds of the server process (``api``),
Postgres (``pg``) and this process (``bench``) with CPU microseconds per row; the server's
resident memory before the run and its peak during it (sampled every 0.1 s with psutil).
Goal (from the issue): 1,000,000 rows in under 60 s, memory flat and under 300 MB whatever
the file size. The machine is shared (2 cores, other work running): the CPU figures say more
than the wall clock. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import psutil
from _common import (
    FIRST_NAMES,
    LAST_NAMES,
    GroupCpuMeter,
    crm_serve,
    free_port,
    pg_pids,
    scratch_database,
    wait_ready,
)

from adapters.crypto import generate_master_key
from adapters.postgres.api_keys import create_api_key

IMPORT = "/api/onlyfans/import/csv"
BOUNDARY = "fancrm-bench-boundary"
TAGS = ("vip", "new", "whale", "churned", "promo", "regular")


def generate(path: Path, rows: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Username,Display Name,Email,Total Spent,Tags,Notes\r\n")
        for i in range(rows):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            cents = rng.randrange(1_000_000)
            tags = ";".join(rng.sample(TAGS, 2))
            out.write(
                f"{first.lower()}_{last.lower()}_{i},{first} {last},"
                f'{first.lower()}.{i}@example.com,"${cents // 100:,}.{cents % 100:02d}",'
                f"{tags},met at the {rng.choice(('launch', 'party', 'stream'))}\r\n"
            )
    return path.stat().st_size


async def multipart_from_disk(path: Path) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file";'
        f' filename="{path.name}"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class PeakRss:
    """Peak resident memory of a process tree, sampled in the background."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def now(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            await asyncio.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self.peak = self.now()
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def run(args: argparse.Namespace) -> None:
    async with scratch_database() as (url, where):
        port = free_port()
        env = {
            "DATABASE_URL": url,
            "CRM_MASTER_KEY": generate_master_key(),
            "CRM_IMPORT_BATCH_SIZE": str(args.batch_size),
            "CRM_IMPORT_MAX_BYTES": str(4 * 1024**3),
        }
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        assert pool is not None
        with crm_serve(env, port) as server, tempfile.TemporaryDirectory() as tmp:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=3600) as client:
                await wait_ready(server, client)
                print(
                    f"postgres: {where}; batch size {args.batch_size}; crm serve pid "
                    f"{server.proc.pid}"
                )
                for rows in args.rows:
                    path = Path(tmp) / f"fans_{rows}.csv"
                    size = generate(path, rows)
                    key, _ = await create_api_key(
                        pool, user_id=f"bench-{rows}-{os.getpid()}", role="creator"
                    )
                    headers = {
                        "Authorization": f"Bearer {key}",
                        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    }
                    labels = ("first import",) if args.once else ("first import", "same file again")
                    for label in labels:
                        meter = GroupCpuMeter([server.proc.pid], await pg_pids(pool))
                        before = meter.sample()
                        with PeakRss(server.proc.pid) as rss:
                            baseline = rss.peak
                            started = time.perf_counter()
                            response = await client.post(
                                IMPORT, content=multipart_from_disk(path), headers=headers
                            )
                            seconds = time.perf_counter() - started
                        cpu = {
                            group: meter.delta(before[group], after)
                            for group, after in meter.sample().items()
                        }
                        if response.status_code != 200:
                            raise SystemExit(f"{response.status_code}: {response.text[:500]}")
                        summary = response.json()["summary"]
                        report(label, rows, size, seconds, summary, cpu, baseline, rss.peak)
                    path.unlink()
        await pool.close()


def report(
    label: str,
    rows: int,
    size: int,
    seconds: float,
    summary: dict[str, int],
    cpu: dict[str, float | None],
    baseline: int,
    peak: int,
) -> None:
    mb = 1024 * 1024
    parts = []
    for group in ("api", "pg", "bench"):
        used = cpu.get(group)
        if used is not None:
            parts.append(f"{group} {used:.1f} s ({used / rows * 1e6:.0f} us/row)")
    print(
        f"{rows:>9,} rows ({size / mb:.0f} MB) {label:<16} {seconds:7.1f} s"
        f" {rows / seconds:>9,.0f} rows/s | inserted {summary['successfulInserts']:,}"
        f" skipped {summary['skipped']:,} errors {summary['errorCount']:,}"
        f" | server RSS {baseline / mb:.0f} MB -> peak {peak / mb:.0f} MB | cpu " + ", ".join(parts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100_000, 1_000_000],
        help="comma-separated file sizes in rows",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--once", action="store_true", help="skip importing each file again")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
