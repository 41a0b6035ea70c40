"""The ``atRisk`` sequence trigger's scan (adapters/postgres/automation_scans.py) over a large
account: one churn model's scores, walked a page at a time as the automation worker does.

    uv run python bench/at_risk_scan.py                       # 100,000 fans, embedded Postgres
    DATABASE_URL=postgresql://... uv run python bench/at_risk_scan.py --fans 20000

Setup (not measured): a scratch, migrated database; one model and ``--fans`` scores (uniform
risks, so about half at risk) written with COPY, then ANALYZE. Measured: each page of 500 of
the query the worker runs once a minute per sequence, the place advanced as ``advance`` does,
until a page comes back empty; then the scan once caught up (what every later minute costs
until the next retrain). Checked: the walk met every at-risk fan once, in order.
Nothing here asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import scratch_database

from adapters.postgres.automation_scans import _QUERIES, PostgresSilentFans
from application.churn import AT_RISK


async def bench(fans: int) -> None:
    async with scratch_database() as (url, where):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        now = datetime.now(UTC)
        await pool.execute(
            "INSERT INTO churn_models VALUES ('a', 1, $1, 1, '2026-01-01', '2026-02-01', '{}',"
            " '{}')",
            now,
        )
        rng = random.Random(1)
        risks = {fan_id: rng.random() for fan_id in range(1, fans + 1)}
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "churn_scores",
                records=[("a", f, 1, r, "[]") for f, r in risks.items()],
                columns=["tenant_id", "fan_id", "model_version", "risk", "factors"],
            )
        await pool.execute("ANALYZE")
        scans = PostgresSilentFans(pool)
        pages, seen = [], []
        while True:
            started = time.perf_counter()
            page = await pool.fetch(_QUERIES["atRisk"], 1, "a", now, 500)
            pages.append(time.perf_counter() - started)
            if not page:
                break
            seen.extend(row["fan_id"] for row in page)
            await scans.advance(1, page[-1]["since"], page[-1]["key"])
        assert seen == sorted(f for f, r in risks.items() if r >= AT_RISK), "the walk"
        idle = []
        for _ in range(20):
            started = time.perf_counter()
            await pool.fetch(_QUERIES["atRisk"], 1, "a", now, 500)
            idle.append(time.perf_counter() - started)
        await pool.close()
    print(
        f"{fans:,} scores ({len(seen):,} at risk), Postgres {where}: {len(pages) - 1} pages of"
        f" 500, a page median {statistics.median(pages) * 1000:.1f} ms, max"
        f" {max(pages) * 1000:.1f} ms; the scan once caught up, median"
        f" {statistics.median(idle) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=100_000)
    asyncio.run(bench(parser.parse_args().fans))


if __name__ == "__main__":
    main()
