"""The people queries (issue 20, item 5) on one account with many fans: suggestions, which
group all of the account's unlinked fans by handle and by email, and one person's view.

    uv run python bench/people.py                  # 100,000 fans, embedded or DATABASE_URL
    uv run python bench/people.py --fans 10000

Only the read side is measured: the fans read table is filled directly (COPY), one fan in
ten with a twin on another platform (the same handle in another case with an '@', or the same
email), and half the twins' pairs linked as people (``people``, ``person_fans``); then the
tables are analysed and ``--runs`` calls of each query timed in this process. Printed: p50,
p95 and max in ms, and how many suggestions the account had.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

import _common
import asyncpg

from adapters.postgres.people_read_model import PostgresPeopleReadModel

TENANT = "bench-people"
PLATFORMS = ("onlyfans", "fansly", "patreon")


def _fans(count: int) -> list[tuple[object, ...]]:
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []
    for n in range(1, count + 1):
        twin_of = n - 1 if n % 10 == 0 else None  # fan n is fan n-1 on another platform
        base = twin_of or n
        platform = PLATFORMS[(n if twin_of is None else n + 1) % 3]
        handle = f"@User{base}" if twin_of and base % 2 else f"user{n}"
        email = f"user{base}@example.com" if twin_of is None or not base % 2 else None
        rows.append((n, TENANT, platform, f"Fan {n}", handle, email, n % 5000, now, now, 1, 1))
    return rows


async def _fill(pool: asyncpg.Pool, count: int) -> list[int]:
    columns = (
        "fan_id", "tenant_id", "platform", "name", "handle", "email", "value_cents",
        "created_at", "updated_at", "version", "identity_version",
    )  # fmt: skip
    await pool.copy_records_to_table("fans", records=_fans(count), columns=columns)
    now = datetime.now(UTC)
    pairs = [(n - 1, n) for n in range(20, count + 1, 20)]  # every other twin pair
    people = [(i, TENANT, now, now, 1) for i in range(1, len(pairs) + 1)]
    links = [(f, i, TENANT, now) for i, pair in enumerate(pairs, 1) for f in pair]
    await pool.copy_records_to_table("people", records=people)
    await pool.copy_records_to_table("person_fans", records=links)
    await pool.execute("ANALYZE fans; ANALYZE people; ANALYZE person_fans")
    return [i for i, _ in enumerate(pairs, 1)]


async def _time(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def _line(what: str, ms: list[float]) -> str:
    p95 = statistics.quantiles(ms, n=20)[18]
    return f"{what}: p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {max(ms):.1f} ms"


async def main(fans: int, runs: int) -> None:
    async with _common.scratch_database() as (url, where):
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            people = await _fill(pool, fans)
            model = PostgresPeopleReadModel(pool)
            found = await model.suggestions(TENANT, 200)
            print(f"{fans:,} fans of one account on {where}; {len(people):,} people")
            print(f"suggestions (first page of 200): {len(found)}")
            suggest = partial(model.suggestions, TENANT, 50)
            print(_line("GET suggestions", await _time(runs, suggest)))
            ids = iter(people * runs)

            async def get() -> object:
                return await model.get_person(TENANT, next(ids))

            print(_line("GET person", await _time(runs, get)))
        finally:
            await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.fans, args.runs))
