"""A simulated account history written through the application's handlers: how long it takes.

    uv run python bench/histories.py [--fans 20000] [--days 180] [--seed 1]
        [--through aggregates|handlers] [--concurrency N]
    DATABASE_URL=postgresql://... uv run python bench/histories.py   # a scratch database there

Writes ``--fans`` fans' last ``--days`` days (adapters/simulated_history) into a fresh,
migrated database (embedded Postgres without DATABASE_URL) and prints the time it took, the
events written, events per second, and the share of fans that churned. The figures are for
this machine: the script, Postgres and its WAL writer share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter
from datetime import UTC, datetime

from _common import scratch_database

from adapters import bootstrap
from adapters.config import Settings
from adapters.observability import configure_logging
from adapters.simulated_history import write_history
from adapters.simulated_history.timeline import live


async def run(args: argparse.Namespace) -> None:
    end = datetime(2026, 12, 1, tzinfo=UTC)
    started = time.perf_counter()
    lives = [live(args.seed, "bench", i, 0.0, args.days) for i in range(min(args.fans, 2000))]
    kinds = Counter(a.kind for life in lives for a in life.actions)
    print(
        f"simulating the lives of {min(args.fans, 2000):,} fans: "
        f"{time.perf_counter() - started:.1f} s; per fan: "
        + ", ".join(f"{k} {v / len(lives):.1f}" for k, v in sorted(kinds.items())),
        flush=True,
    )
    async with scratch_database() as (url, where):
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": secrets.token_urlsafe(32)},
            database_url=url,
            pool_min_size=2,
            pool_max_size=(args.concurrency or 16) + 2,
        )
        container = await bootstrap.build(settings)
        try:
            started = time.perf_counter()
            truth = await write_history(
                container,
                account_id="bench-history",
                fans=args.fans,
                days=args.days,
                seed=args.seed,
                end=end,
                through=args.through,
                concurrency=args.concurrency,
            )
            elapsed = time.perf_counter() - started
        finally:
            await container.close()
    print(
        f"{args.fans:,} fans x {args.days} days ({where}, through {args.through},"
        f" concurrency {args.concurrency or 'default'}):"
        f" {elapsed:.1f} s, {truth.events_written:,} events written,"
        f" {truth.events_written / elapsed:,.0f} events/s;"
        f" churned {truth.churned_share():.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fans", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--through", choices=("aggregates", "handlers"), default="aggregates")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
