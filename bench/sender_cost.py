"""What one message costs the sender: CPU milliseconds per message, and the process's memory
(the inputs of bench/cost_model.py's Lambda line).

    uv run python bench/sender_cost.py                  # 2,000 messages, embedded Postgres
    uv run python bench/sender_cost.py --messages 5000 --loops 4
    DATABASE_URL=postgresql://... REDIS_URL=redis://... uv run python bench/sender_cost.py

A fresh migrated database (DATABASE_URL's server, or embedded PostgreSQL), the Postgres queue
filled with ``--messages`` sealed message bodies for one account's fans (as the relay would put
them there), the OnlyFans simulator in a child process (``crm simulate onlyfans``, no latency,
no limit), and the limiter in Redis when REDIS_URL is set (else disabled). Then ``--loops``
loops, as as many Lambda invocations at once, each taking a batch of 10 and handing it to
``Sender.handle`` (what ``lambda_handler`` calls), deleting what it finished, until every
message is sent. Printed: this process's CPU time per message over the drain (PostgreSQL,
Redis and the simulator run in other processes, so only the sender's own work is counted,
which is what Lambda bills beside the wait for the platform), and its resident memory at the
start and at the peak (a Lambda's memory setting must hold the peak).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

import _common

from adapters import bootstrap
from adapters.config import Settings
from adapters.crypto import generate_master_key
from tests.support.sending import bulk_messages, fans_with_conversations, open_stack
from worker.sender import build_sender, record_from_receive


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def until_listening(port: int, deadline: float = 30.0) -> None:
    """The simulator accepts connections (a child process takes a moment to start)."""
    async with asyncio.timeout(deadline):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


async def drain(container: bootstrap.Container, total: int, loops: int) -> None:
    sender, close = await build_sender(container)
    sent = 0

    async def loop() -> None:
        nonlocal sent
        while sent < total:
            received = await container.queue.receive("normal", wait_seconds=0.2)
            if not received:
                continue
            records = [record_from_receive("normal", m) for m in received]
            outcome = await sender.handle(records)
            done = [r.receipt for r in records if outcome[r.record_id].done]
            await container.queue.delete("normal", done)
            sent += len(done)

    try:
        await asyncio.wait_for(asyncio.gather(*(loop() for _ in range(loops))), 600)
    finally:
        await close()


async def run(args: argparse.Namespace) -> None:
    port = _common.free_port()
    crm = str(Path(sys.executable).parent / "crm")
    simulator = await asyncio.create_subprocess_exec(
        *(crm, "simulate", "onlyfans", "--port", str(port)),
        *("--rate", "0", "--latency", "0", "--jitter", "0"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    redis_url = os.environ.get("REDIS_URL")
    try:
        await until_listening(port)
        async with _common.scratch_database() as (url, where):
            settings = {
                "master_key": generate_master_key(),
                "onlyfans_api_url": f"http://127.0.0.1:{port}",
                "redis_url": redis_url,
                "rate_limiter_enabled": bool(redis_url),
                "rate_limit_per_second": 1_000_000.0,
                "rate_limit_burst": 1_000_000,
            }
            async with open_stack(url, **settings) as stack:
                fans = await fans_with_conversations(stack, 20)
                await bulk_messages(stack, fans, 200, via_outbox=False)
                sender_settings = Settings.from_env({}, database_url=url, **settings)
                container = await bootstrap.build(sender_settings)
                try:
                    await drain(container, 200, args.loops)  # connections, first calls
                    await bulk_messages(stack, fans, args.messages, via_outbox=False)
                    start_rss = rss_mb()
                    cpu, wall = time.process_time(), time.perf_counter()
                    await drain(container, args.messages, args.loops)
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                finally:
                    await container.close()
    finally:
        simulator.terminate()
        await simulator.wait()
    print(f"sender: {args.messages} messages, {args.loops} loops of 10, PostgreSQL {where},")
    print(f"  limiter {'in Redis' if redis_url else 'off (no REDIS_URL)'}, simulator latency 0")
    print(f"  CPU per message      {cpu * 1000 / args.messages:.2f} ms")
    print(f"  messages per second  {args.messages / wall:.0f}")
    print(f"  memory (RSS)         {start_rss:.0f} MB at the start, {peak_rss_mb():.0f} MB peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--loops", type=int, default=4, help="batches handled at once")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
