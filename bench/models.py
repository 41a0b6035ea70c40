"""Churn prediction measured (issue 21): quality on a later window, cost, and API latency.

    uv run --group bench python bench/models.py [--fans 20000] [--days 180] [--seed 1]
        [--big-fans 100000] [--requests 300] [--skip simulated,cdnow,big,api]
    DATABASE_URL=postgresql://... uv run --group bench python bench/models.py

1. Simulated: ``--fans`` fans' last ``--days`` days (adapters/simulated_history, fans with
   hidden churn traits) written into a scratch database, the churn view caught up, and the
   model trained as application/churn_training.py does: on the cut-off 60 days before the end,
   validated on the one 30 days before it (labels: the 30 days after each cut-off). Beside it,
   on the same validation fans and labels: recency alone (days since the fan last wrote or
   bought) and BG/NBD's probability alive (fitted on the purchases before the validation
   cut-off; bench/_churn_baselines.py). ROC AUC and precision among the riskiest 10%.
2. CDNOW (the `lifetimes` package's real purchase history): the same model on purchase
   features only, trained as of 1998-05-01 and validated as of 1998-05-31, beside recency and
   BG/NBD.
3. Cost: features (the view's SQL as of three cut-offs) and fit for ``--big-fans`` fans whose
   daily rows are generated in SQL: wall time and the process's peak resident memory.
4. API: p95 of GET /api/analytics/churn, /api/analytics/pricing?fanId= and
   /api/crm/conversations/{id}/suggestions over the simulated account (in-process ASGI, one
   request at a time, ``--requests`` each).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import secrets
import time
from datetime import UTC, date, datetime, timedelta

import httpx
from _churn_baselines import bg_nbd, cdnow, purchase_activity, rfm
from _common import percentile, scratch_database

from adapters import bootstrap
from adapters.churn_fit import fit_logistic
from adapters.config import Settings
from adapters.http.app import create_app
from adapters.observability import configure_logging
from adapters.postgres.api_keys import create_api_key
from application.churn import cutoffs, features, recency_days, score
from application.churn_metrics import precision_at, roc_auc
from application.churn_training import train_churn
from projections.churn_activity import ChurnActivityProjection
from projections.conversations import ConversationsProjection
from projections.fans import FansProjection
from projections.messages import MessagesProjection
from projections.pricing import PricingProjection
from projections.runner import ProjectionGroupRunner
from projections.suggestions import SuggestionsProjection

END = datetime(2026, 12, 1, tzinfo=UTC)
ACCOUNT = "bench-churn"


def judged(name: str, churned: list[bool], risks: list[float]) -> None:
    auc = roc_auc(churned, risks)
    print(f"  {name:<44} ROC AUC {auc:.3f}   precision@10% {precision_at(churned, risks):.3f}")


def bg_nbd_figures(churned: list[bool], data) -> None:
    started = time.perf_counter()
    alive, expected, library = bg_nbd(data)
    print(f"  BG/NBD: {library}, fitted in {time.perf_counter() - started:.1f} s")
    judged("BG/NBD 1 - P(alive)", churned, [1 - p for p in alive])
    # P(alive) is 1 for a customer with no repeat purchase (the model's assumption), so its
    # one-time buyers rank safest; the expected purchases of the next 30 days rank them too.
    judged("BG/NBD -E[purchases in 30 days]", churned, [-e for e in expected])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def simulated(container: bootstrap.Container, args: argparse.Namespace) -> None:
    from adapters.simulated_history import write_history

    started = time.perf_counter()
    truth = await write_history(
        container, account_id=ACCOUNT, fans=args.fans, days=args.days, seed=args.seed, end=END
    )
    print(
        f"simulated history: {args.fans:,} fans x {args.days} days, {truth.events_written:,}"
        f" events in {time.perf_counter() - started:.0f} s; churned by the end:"
        f" {truth.churned_share():.1%}"
    )
    started = time.perf_counter()
    views = [
        FansProjection(),
        ConversationsProjection(),
        MessagesProjection(),
        SuggestionsProjection(),
        PricingProjection(),
        ChurnActivityProjection(),
    ]
    group = ProjectionGroupRunner(container.projection_store, views)
    applied = await group.catch_up()
    await group.close()
    print(f"views caught up: {applied:,} events in {time.perf_counter() - started:.0f} s")
    train_day, validation_day, score_day = cutoffs((END - timedelta(seconds=1)).date())
    snapshot = await container.churn.snapshot(
        ACCOUNT, train_day.isoformat(), validation_day.isoformat(), score_day.isoformat()
    )
    labels = [fan.churned for fan in snapshot.train]
    parameters = fit_logistic([features(f, train_day) for f in snapshot.train], labels)
    churned = [fan.churned for fan in snapshot.validation]
    print(
        f"churn, simulated: trained as of {train_day} on {len(labels):,} fans"
        f" ({sum(labels) / len(labels):.1%} churned), validated as of {validation_day} on"
        f" {len(churned):,} fans ({sum(churned) / len(churned):.1%} churned)"
    )
    judged(
        "our model (logistic regression)",
        churned,
        [score(parameters, features(f, validation_day))[0] for f in snapshot.validation],
    )
    judged("recency only", churned, [recency_days(f, validation_day) for f in snapshot.validation])
    rows = await container.pool.fetch(
        "SELECT fan_id, day FROM churn_fan_days WHERE tenant_id = $1 AND purchases > 0",
        ACCOUNT,
    )
    days: dict[int, list[date]] = {}
    for row in rows:
        days.setdefault(row["fan_id"], []).append(row["day"])
    data = rfm(days, {f.fan_id: f.first_day for f in snapshot.validation}, validation_day)
    bg_nbd_figures(churned, data)
    trained = await train_churn(
        container.churn, fit_logistic, ACCOUNT, now=END - timedelta(seconds=1)
    )
    print(f"  saved as version {trained.version}, {trained.scored:,} fans scored")


def on_cdnow() -> None:
    customers = cdnow()
    train_day, validation_day = date(1998, 5, 1), date(1998, 5, 31)
    train = [a for c, p in customers.items() if (a := purchase_activity(c, p, train_day))]
    valid = [a for c, p in customers.items() if (a := purchase_activity(c, p, validation_day))]
    labels = [a.churned for a in train]
    parameters = fit_logistic([features(a, train_day) for a in train], labels)
    churned = [a.churned for a in valid]
    print(
        f"churn, CDNOW ({len(customers):,} customers): trained as of {train_day}"
        f" ({sum(labels) / len(labels):.1%} churned), validated as of {validation_day}"
        f" ({sum(churned) / len(churned):.1%} churned: no purchase in the next 30 days)"
    )
    judged(
        "our model (purchase features only)",
        churned,
        [score(parameters, features(a, validation_day))[0] for a in valid],
    )
    judged("recency only", churned, [recency_days(a, validation_day) for a in valid])
    purchase_days = {c: [d for d, _ in p] for c, p in customers.items()}
    data = rfm(purchase_days, {a.fan_id: a.first_day for a in valid}, validation_day)
    bg_nbd_figures(churned, data)


async def big(container: bootstrap.Container, fans: int) -> None:
    """``fans`` fans, each active on a random ~40 of 180 days, written straight into the
    churn view's tables (what the projector would hold), then features and fit timed."""
    tenant = "bench-big"
    start = END - timedelta(days=180)
    await container.pool.execute(
        "INSERT INTO churn_fans (tenant_id, fan_id, first_seen_at)"
        " SELECT $1, g, $2::timestamptz FROM generate_series(1, $3) g",
        tenant,
        start,
        fans,
    )
    await container.pool.execute(
        """
        INSERT INTO churn_fan_days (tenant_id, fan_id, day, purchases, spend_cents,
            fan_messages, account_messages, reads, last_purchase_at, last_fan_message_at)
        SELECT $1, f, d, p, p * 1500, m, 1, 1,
               CASE WHEN p > 0 THEN (d + time '12:00') AT TIME ZONE 'UTC' END,
               (d + time '13:00') AT TIME ZONE 'UTC'
        FROM (SELECT f.f, ($2::date + s) AS d, (random() < 0.2)::int AS p,
                     1 + (random() * 3)::int AS m
              FROM generate_series(1, $3) f(f), generate_series(0, 179) s
              -- each fan fades at its own pace: some stop writing well before the end
              WHERE random() < 0.22 * (1 - s / (180.0 + (f.f % 7) * 60))) x
        """,
        tenant,
        start.date(),
        fans,
    )
    train_day, validation_day, score_day = cutoffs((END - timedelta(seconds=1)).date())
    before = peak_mb()
    started = time.perf_counter()
    snapshot = await container.churn.snapshot(
        tenant, train_day.isoformat(), validation_day.isoformat(), score_day.isoformat()
    )
    read = time.perf_counter() - started
    labels = [fan.churned for fan in snapshot.train]
    rows = [features(f, train_day) for f in snapshot.train]
    fit_started = time.perf_counter()
    fit_logistic(rows, labels)
    fitted = time.perf_counter()
    print(
        f"training cost, {fans:,} fans: features (3 cut-offs) {read:.1f} s, feature vectors"
        f" {fit_started - started - read:.1f} s, fit {fitted - fit_started:.1f} s, total"
        f" {fitted - started:.1f} s; peak RSS {peak_mb():.0f} MB (before: {before:.0f} MB)"
    )


async def api_latency(container: bootstrap.Container, requests: int) -> None:
    key, _ = await create_api_key(container.pool, user_id=ACCOUNT, role="creator")
    headers = {"Authorization": f"Bearer {key}"}
    fans = [
        r["fan_id"]
        for r in await container.pool.fetch("SELECT fan_id FROM fans WHERE tenant_id = $1", ACCOUNT)
    ]
    conversations = [
        r["conversation_id"]
        for r in await container.pool.fetch(
            "SELECT conversation_id FROM conversations WHERE tenant_id = $1", ACCOUNT
        )
    ]
    rng = random.Random(1)
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for name, path in (
            ("GET /api/analytics/churn", lambda: "/api/analytics/churn"),
            (
                "GET /api/analytics/pricing?fanId=",
                lambda: f"/api/analytics/pricing?fanId={rng.choice(fans)}",
            ),
            (
                "GET /api/crm/conversations/{id}/suggestions",
                lambda: f"/api/crm/conversations/{rng.choice(conversations)}/suggestions",
            ),
        ):
            latencies = []
            for _ in range(requests):
                started = time.perf_counter()
                answer = await client.get(path(), headers=headers)
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
            print(
                f"  {name:<44} p50 {percentile(latencies, 0.5) * 1000:.1f} ms"
                f"   p95 {percentile(latencies, 0.95) * 1000:.1f} ms ({requests} requests)"
            )


async def run(args: argparse.Namespace) -> None:
    skip = set(args.skip.split(",")) if args.skip else set()
    if "cdnow" not in skip:
        on_cdnow()
    async with scratch_database() as (url, where):
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": secrets.token_urlsafe(32)},
            database_url=url,
            pool_min_size=2,
            pool_max_size=12,
        )
        container = await bootstrap.build(settings)
        try:
            if "simulated" not in skip:
                await simulated(container, args)
                if "api" not in skip:
                    print(f"API latency ({where}, in-process, one request at a time):")
                    await api_latency(container, args.requests)
            if "big" not in skip:
                await big(container, args.big_fans)
        finally:
            await container.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fans", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--big-fans", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--skip", default="", help="comma-separated: simulated,cdnow,big,api")
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
