"""Sealing the log into its hash chain, and verifying it, beside a bare read of the same rows.

    uv run python bench/seal.py                   # 200,000 events, embedded Postgres
    uv run python bench/seal.py --events 50000
    DATABASE_URL=postgresql://... uv run python bench/seal.py

A scratch database gets ``--events`` events written by SQL (transactions of 100 events,
~400 bytes of jsonb each, the shape of an encrypted FanCreated). Then, in order:

* ``bare read``: the sealer's own query (commit order, below xmin, ``data::text``) in
  batches of ``--batch-size``, rows turned into LogRow, no hashing, no writing;
* ``seal``: ``PostgresEventChain.catch_up`` from an empty chain (read, hash, one INSERT per
  batch, each batch a transaction);
* ``verify``: ``PostgresEventChain.verify`` over the whole chain.

``cpu us/event`` is this process's CPU time plus the local Postgres processes' per event.
The sealer keeps up with the writers if its rate is above the append rate (bench/append.py).
Nothing asserts a timing: the script prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import _common

from adapters.postgres.event_chain import row_from_record
from adapters.postgres.event_chain_store import _TO_SEAL, PostgresEventChain
from adapters.postgres.pool import create_pool

_FILL = """
INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata)
SELECT gen_random_uuid(), 'fan-' || n, 'fan', 1, 'FanCreated',
       jsonb_build_object('fan_id', n, 'tenant', 'user-' || (n % 50), 'platform', 'onlyfans',
                          'value_cents', n * 7, 'tags', jsonb_build_array('vip', 'new'),
                          'timestamp', now()::text, '_pii', repeat(md5(n::text), 5)),
       jsonb_build_object('tenant', 'user-' || (n % 50), 'actor', 'apikey:abc',
                          'correlation_id', md5(n::text), 'causation_id', md5(n::text),
                          'trace_id', null, 'schema_version', 1)
FROM generate_series($1::bigint, $2::bigint) AS n
"""


async def main(events: int, batch_size: int) -> None:
    async with _common.scratch_database() as (url, where):
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            for start in range(1, events + 1, 100):
                await pool.execute(_FILL, start, min(start + 99, events))
            await pool.execute("VACUUM ANALYZE events")
            meter = _common.PgCpuMeter(await _common.pg_pids(pool))
            print(f"{events} events, batches of {batch_size}, Postgres: {where}")
            print(f"{'job':<10} {'events/s':>10} {'cpu us/event':>13}")
            chain = PostgresEventChain(pool, batch_size=batch_size)
            for name, job in (
                ("bare read", lambda: _bare_read(pool, batch_size)),
                ("seal", chain.catch_up),
                ("verify", lambda: _verify(chain)),
            ):
                before = meter.sample()
                started = time.perf_counter()
                count = await job()
                elapsed = time.perf_counter() - started
                after = meter.sample()
                cpu = after[0] - before[0] + (meter.delta(before[1], after[1]) or 0.0)
                print(f"{name:<10} {count / elapsed:>10,.0f} {cpu / count * 1e6:>13.1f}")
        finally:
            await pool.close()


async def _bare_read(pool: object, batch_size: int) -> int:
    tx, pos, total = 0, 0, 0
    while rows := await pool.fetch(_TO_SEAL, tx, pos, batch_size):  # type: ignore[attr-defined]
        converted = [row_from_record(r) for r in rows]
        tx, pos = converted[-1].transaction_id, converted[-1].position
        total += len(converted)
    return total


async def _verify(chain: PostgresEventChain) -> int:
    report = await chain.verify()
    assert report.tampering is None, report
    return report.checked


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch_size))
