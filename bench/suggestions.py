"""Reply suggestions on a simulated history: the share of held-out fan messages for which one
of the three suggestions is the reply that worked, beside three random past replies that
worked.

The simulation: fans write about one of a few topics (each a handful of phrasings with noise
words); the account answers with one of six replies of that topic (some naming the fan), each
with its own hidden chance of a fan reply (and, for PPV ones, of a purchase). The history is
split in time: the first 80% of exchanges fill the projection (SuggestionsProjection, the
same code as production, on a scratch database), and each exchange of the last 20% whose reply
worked is asked about: is that reply among the three suggestions for the fan's message?
Then the route, GET /api/crm/conversations/{id}/suggestions, in-process (as bench/models.py
measures it), one request at a time on random conversations: their rows are written in bulk.

    uv run python bench/suggestions.py [--fans 2000] [--seed 7] [--requests 300] [--asked N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from _common import FIRST_NAMES, LAST_NAMES, percentile, scratch_database

from adapters import bootstrap
from adapters.config import Settings
from adapters.http.app import create_app
from adapters.observability import configure_logging
from adapters.postgres.api_keys import create_api_key
from adapters.postgres.pool import create_pool
from adapters.postgres.suggestions_read_model import PostgresSuggestionIndex
from application.ports import EventMetadata, RecordedEvent
from domain.campaign import render
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message
from projections.suggestions import SuggestionsProjection

TENANT = "user-bench-suggestions"
TOPICS = {
    "tonight": ["what are you doing tonight", "any plans tonight", "are you busy tonight babe"],
    "photos": ["loved your new photos", "your pics are amazing", "that photo set was hot"],
    "video": ["do you make custom videos", "can i get a video", "how much for a custom clip"],
    "morning": ["good morning beautiful", "morning! sleep well?", "gm how are you today"],
    "miss": ["i missed you", "where have you been", "haven't heard from you in a while"],
    "gym": ["did you go to the gym today", "your workout posts are great", "leg day?"],
}
NOISE = ["lol", "haha", "so", "really", "omg", "hey", "ok", "xx", "hun", "tbh"]
REPLIES_PER_TOPIC = 6


def replies_for(rng: random.Random) -> dict[str, list[tuple[str, float, int]]]:
    """Per topic: (template, chance of a fan reply, price in cents)."""
    catalogue = {}
    for topic in TOPICS:
        catalogue[topic] = [
            (
                f"{'{{first_name}}, ' if i % 2 else ''}{topic} reply {i}: "
                f"{rng.choice(['you know I love that', 'just for you', 'tell me more'])}",
                rng.uniform(0.05, 0.9),
                rng.choice([0, 0, 1500]),
            )
            for i in range(REPLIES_PER_TOPIC)
        ]
    return catalogue


class Recorder:
    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def add(self, aggregate: object) -> None:
        for event in aggregate.collect_events():  # type: ignore[attr-defined]
            self.events.append(
                RecordedEvent(
                    position=len(self.events) + 1,
                    transaction_id=len(self.events) + 1,
                    event_id=uuid.uuid4(),
                    stream_id=aggregate.id,  # type: ignore[attr-defined]
                    stream_type="x",
                    version=1,
                    event_type=type(event).__name__,
                    event=event,
                    metadata=EventMetadata(
                        tenant=TENANT, actor="bench", correlation_id="c", causation_id="c"
                    ),
                    recorded_at=datetime.now(UTC),
                )
            )


def simulate(fans: int, seed: int) -> tuple[Recorder, list[tuple[str, str, str]], int]:
    """The training events, the held-out exchanges that worked (fan text, the worked reply
    filled for the fan, the fan's name), and how many exchanges were held out."""
    rng = random.Random(seed)
    catalogue = replies_for(rng)
    exchanges = []
    for fan_id in range(1, fans + 1):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        for _ in range(rng.randrange(2, 8)):
            topic = rng.choice(list(TOPICS))
            text = " ".join([rng.choice(NOISE)] * rng.randrange(2) + [rng.choice(TOPICS[topic])])
            exchanges.append((rng.random(), fan_id, name, topic, text))
    exchanges.sort()
    cut = int(len(exchanges) * 0.8)
    training, held_out = Recorder(), []
    seen: set[int] = set()
    for index, (_, fan_id, name, topic, text) in enumerate(exchanges):
        template, chance, price = rng.choice(catalogue[topic])
        worked = rng.random() < chance
        if index >= cut:
            if worked:
                held_out.append((text, render(template, name=name, handle=None), name))
            continue
        if fan_id not in seen:
            seen.add(fan_id)
            fan = Fan.register(fan_id=fan_id, tenant=TENANT, name=name, handle=None)
            training.add(fan)
        inbound = InboundMessage.receive(
            message_id=str(uuid.uuid4()),
            tenant=TENANT,
            conversation_id=fan_id,
            fan_id=fan_id,
            content=text,
            platform_message_id=uuid.uuid4().hex,
        )
        training.add(inbound)
        message = Message.queue(
            message_id=str(uuid.uuid4()),
            tenant=TENANT,
            conversation_id=fan_id,
            fan_id=fan_id,
            content=render(template, name=name, handle=None),
            price_cents=price,
        )
        if worked and price:
            message.dispatch("high")
            message.mark_sent(None)
            message.purchase(price)
        training.add(message)
        if worked and not price:
            training.add(
                InboundMessage.receive(
                    message_id=str(uuid.uuid4()),
                    tenant=TENANT,
                    conversation_id=fan_id,
                    fan_id=fan_id,
                    content=rng.choice(NOISE),
                    platform_message_id=uuid.uuid4().hex,
                )
            )
    return training, held_out, len(exchanges) - cut


async def route_latency(url: str, fans: int, requests: int, seed: int) -> list[float]:
    """Seconds per GET of the route on random conversations (the conversations' rows, which
    the route checks first, written in bulk: one per fan, its id the fan's)."""
    settings = Settings.from_env(
        {"CRM_MASTER_KEY": secrets.token_urlsafe(32)}, database_url=url, pool_min_size=2
    )
    container = await bootstrap.build(settings)
    try:
        await container.pool.execute(
            "INSERT INTO conversations (conversation_id, tenant_id, fan_id, platform,"
            " created_at, activity_at) SELECT f, $1, f, 'onlyfans', now(), now()"
            " FROM generate_series(1, $2::bigint) f",
            TENANT,
            fans,
        )
        await container.pool.execute("ANALYZE")
        key, _ = await create_api_key(container.pool, user_id=TENANT, role="creator")
        headers = {"Authorization": f"Bearer {key}"}
        rng = random.Random(seed)
        took = []
        transport = httpx.ASGITransport(app=create_app(container=container))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(requests):
                path = f"/api/crm/conversations/{rng.randint(1, fans)}/suggestions"
                started = time.perf_counter()
                answer = await client.get(path, headers=headers)
                took.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
        return took
    finally:
        await container.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fans", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--asked", type=int, default=0, help="ask only this many held-out exchanges (0: all)"
    )
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    training, held_out, asked = simulate(args.fans, args.seed)
    rng = random.Random(args.seed + 1)
    worked_total = len(held_out)
    if args.asked:  # a sample, for big histories: each question costs a query
        held_out = rng.sample(held_out, min(args.asked, len(held_out)))
    async with scratch_database() as (url, where):
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            projection = SuggestionsProjection()
            for start in range(0, len(training.events), 2000):
                async with pool.acquire() as connection, connection.transaction():
                    await projection.apply_batch(connection, training.events[start : start + 2000])
            # What autovacuum would have done by now: without statistics the planner guesses.
            await pool.execute("ANALYZE")
            worked = await pool.fetch(
                "SELECT DISTINCT template FROM suggestion_replies"
                " WHERE tenant_id = $1 AND outcome IS NOT NULL",
                TENANT,
            )
            past = [row["template"] for row in worked]
            index = PostgresSuggestionIndex(pool)
            hits = random_hits = 0
            took = []
            for text, reply, name in held_out:
                started = time.perf_counter()
                found = await index.candidates(TENANT, text, 3)
                took.append((time.perf_counter() - started) * 1000)
                suggested = {render(c.template, name=name, handle=None) for c in found}
                hits += reply in suggested
                guesses = {render(t, name=name, handle=None) for t in rng.sample(past, 3)}
                random_hits += reply in guesses
        finally:
            await pool.close()
        route = await route_latency(url, args.fans, args.requests, args.seed)
    print(f"database: {where}; fans: {args.fans}; training events: {len(training.events)}")
    print(
        f"held-out exchanges: {asked}; of them with a reply that worked: {worked_total}"
        f" (asked: {len(held_out)})"
    )
    print(f"one of three suggestions is the reply that worked: {hits / len(held_out):.1%}")
    print(f"one of three random past replies that worked is it: {random_hits / len(held_out):.1%}")
    print(
        f"retrieval query (one connection, sequential): p50 {percentile(took, 0.5):.1f} ms,"
        f" p95 {percentile(took, 0.95):.1f} ms over {len(took)} queries"
    )
    print(
        f"GET /api/crm/conversations/{{id}}/suggestions (in-process, one at a time):"
        f" p50 {percentile(route, 0.5) * 1000:.1f} ms, p95 {percentile(route, 0.95) * 1000:.1f} ms"
        f" over {len(route)} requests"
    )


if __name__ == "__main__":
    asyncio.run(main())
