"""Sender throughput with the platforms mixed (issue 20): OnlyFans and Fansly messages on one
queue, each platform's simulator limited as its limiter, four pollers in one process; a send
to a Patreon member is refused at the API (no direct messages), so Patreon adds none.

    REDIS_URL=redis://... uv run python bench/platforms.py
    REDIS_URL=redis://... uv run python bench/platforms.py --onlyfans 100/10 --fansly 50/5

A fresh migrated database (DATABASE_URL's server, or embedded PostgreSQL), one fan per
platform, two OnlyFans messages for every Fansly one queued through the relay, then the sender
(``build_sender``: each platform's gateway and limiter) drains the queue. Printed per
platform: messages sent, the rate after the burst on the limiter's clock (the Redis time of
each token granted) against the limit, the worst window of those grants (<= 0: the limit held
everywhere), and what the simulator answered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import datetime

import _common

from adapters.crypto import generate_master_key
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from application.delivery import Delivered, SendJob
from application.messages import outbox_entry, stream_write
from domain.message import Message
from tests.support.sending import Stack, open_stack, window_excess
from worker.relay import Relay
from worker.sender import build_sender, run_sender

CHUNK = 250


def limit(text: str) -> tuple[float, int]:
    rate, burst = text.split("/")
    return float(rate), int(burst)


async def queue_mixed(stack: Stack, per_fansly: int, fansly_messages: int) -> list[str]:
    """``per_fansly`` OnlyFans messages for every Fansly one, through the outbox and relay;
    returns each message's platform in queue order."""
    fans, conversations = {}, {}
    for platform in ("onlyfans", "fansly", "patreon"):
        body = {"name": platform, "handle": f"h{uuid.uuid4().hex[:8]}", "platform": platform}
        created = await stack.http.post("/api/crm/fans", json=body, headers=stack.auth)
        fans[platform] = created.json()["fan"]["id"]
    refused = await stack.http.post(
        "/api/onlyfans/messages/send",
        json={"recipientId": fans["patreon"], "content": "hi"},
        headers=stack.auth,
    )
    print(f"a send to the Patreon member: {refused.status_code} {refused.json()['type']}")
    for platform in ("onlyfans", "fansly"):
        opened = await stack.http.post(
            "/api/crm/conversations", json={"fanId": fans[platform]}, headers=stack.auth
        )
        conversations[platform] = opened.json()["id"]
    order = (["onlyfans"] * per_fansly + ["fansly"]) * fansly_messages
    for start in range(0, len(order), CHUNK):
        writes, entries = [], []
        for i in range(start, min(start + CHUNK, len(order))):
            platform = order[i]
            message = Message.queue(
                message_id=str(uuid.uuid4()),
                tenant=stack.tenant,
                conversation_id=conversations[platform],
                fan_id=fans[platform],
                content=f"message {i}",
                platform=platform,
            )
            writes.append(stream_write(message, "message"))
            entries.append(outbox_entry(message, stack.ctx))
        await stack.container.events.append_all(
            writes, metadata=stack.ctx.metadata(), outbox=entries
        )
    relay = Relay(stack.container.outbox, stack.container.queue, stack.container.events)
    while await stack.container.outbox.pending():
        await relay.run_once()
    return order


async def run(args: argparse.Namespace) -> None:
    limits = {"onlyfans": limit(args.onlyfans), "fansly": limit(args.fansly)}
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit("REDIS_URL: the limiters run in Redis")
    simulated = {
        platform: Simulator(SimulatorConfig(rate_per_second=rate, burst=burst))
        for platform, (rate, burst) in limits.items()
    }
    async with (
        simulated["onlyfans"] as onlyfans,
        simulated["fansly"] as fansly,
        _common.scratch_database() as (url, where),
        open_stack(
            url,
            master_key=generate_master_key(),
            redis_url=redis_url,
            onlyfans_api_url=onlyfans.url,
            fansly_api_url=fansly.url,
            rate_limit_per_second=limits["onlyfans"][0],
            rate_limit_burst=limits["onlyfans"][1],
            fansly_rate_limit_per_second=limits["fansly"][0],
            fansly_rate_limit_burst=limits["fansly"][1],
        ) as stack,
    ):
        order = await queue_mixed(stack, args.per_fansly, args.fansly_messages)
        sender, close = await build_sender(stack.container)
        grants: list[tuple[str, datetime]] = []
        deliver = sender.delivery.deliver
        all_sent = asyncio.Event()

        async def recording(job: SendJob) -> Delivered:
            delivered = await deliver(job)
            if delivered.happened == "sent" and delivered.token_at is not None:
                grants.append((job.platform, delivered.token_at))
                if len(grants) == len(order):
                    all_sent.set()
            return delivered

        sender.delivery.deliver = recording  # type: ignore[method-assign]
        stop = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(
            run_sender(sender, stack.container.queue, stop, concurrency=args.pollers)
        )
        async with asyncio.timeout(600):
            await all_sent.wait()
        wall = time.monotonic() - started
        stop.set()
        await task
        await close()
        print(
            f"PostgreSQL {where}; {len(order)} messages sent in {wall:.2f} s "
            f"({len(order) / wall:.0f}/s overall), {args.pollers} pollers"
        )
        for platform, simulator in (("onlyfans", onlyfans), ("fansly", fansly)):
            rate, burst = limits[platform]
            times = sorted(at for p, at in grants if p == platform)
            span = (times[-1] - times[0]).total_seconds()
            print(
                f"{platform}: {len(times)} sent, {(len(times) - burst) / span:.1f}/s after the "
                f"burst of {burst} (limit {rate:g}/s); worst window "
                f"{window_excess(times, rate, burst):+.4f}; simulator answers "
                f"{dict(simulator.requests)}, deliveries {len(simulator.deliveries())}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onlyfans", default="100/10", help="rate/burst")
    parser.add_argument("--fansly", default="50/5", help="rate/burst")
    parser.add_argument("--fansly-messages", type=int, default=750)
    parser.add_argument("--per-fansly", type=int, default=2, help="OnlyFans messages per Fansly")
    parser.add_argument("--pollers", type=int, default=4)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
