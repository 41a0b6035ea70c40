"""`crm dev`: the whole system in one process on the embedded local stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as redis
import structlog
import uvicorn

from adapters import bootstrap
from adapters.config import Settings
from adapters.crypto import generate_master_key
from adapters.dev_banner import DevStack, banner
from adapters.dev_patreon import start_patreon_simulator
from adapters.embedded import EmbeddedStack
from adapters.http.app import create_app
from adapters.observability import configure_logging
from adapters.onlyfans.simulator import Simulator, SimulatorConfig
from adapters.postgres.api_keys import create_api_key, find_principal
from adapters.postgres.migrate import migrate
from worker.automations import run_automation_worker
from worker.campaigns import run_campaign_worker
from worker.churn import run_churn_worker
from worker.projections import run_projectors
from worker.relay import run_relay
from worker.sealer import run_sealer
from worker.sender import run_sender_worker

log = structlog.get_logger(__name__)

DEV_USER = "1"


async def run_dev(host: str, port: int, data_dir: Path, queue: str = "postgres") -> None:
    configure_logging(
        os.environ.get("LOG_LEVEL", "INFO"), json=os.environ.get("LOG_FORMAT") == "json"
    )
    data_dir = data_dir.resolve()
    stack = EmbeddedStack(data_dir)
    try:
        database_url = os.environ.get("DATABASE_URL") or await asyncio.to_thread(
            stack.start_postgres
        )
        redis_url = os.environ.get("REDIS_URL") or await asyncio.to_thread(stack.start_redis)
        await migrate(database_url)
        await _ping_redis(redis_url)
        sqs = {}
        if queue == "sqs":
            sqs = {
                "queue_backend": "sqs",
                "sqs_endpoint_url": os.environ.get("SQS_ENDPOINT_URL") or stack.start_sqs(),
            }
        webhook_secret = await _dev_webhook_secret(database_url)
        platform_url = os.environ.get("ONLYFANS_API_URL")
        simulated = not platform_url
        if simulated:  # with another platform configured, nothing would call the simulator
            simulator = _simulator(
                Settings.from_env(database_url=database_url), host, port, webhook_secret
            )
            await asyncio.to_thread(simulator.start)
            stack.on_stop(simulator.stop)
            platform_url = simulator.url
        fansly_url = os.environ.get("FANSLY_API_URL")
        if not fansly_url:
            # Fansly's simulator: the same class, a second time, at Fansly's pace. Its
            # webhooks come to the same path: each names our message or fan, whose platform
            # is known, so the path need not tell.
            fansly = _simulator(
                Settings.from_env(database_url=database_url),
                host,
                port,
                webhook_secret,
                platform="fansly",
            )
            await asyncio.to_thread(fansly.start)
            stack.on_stop(fansly.stop)
            fansly_url = fansly.url
        settings = Settings.from_env(
            database_url=database_url,
            redis_url=redis_url,
            **sqs,
            master_key=os.environ.get("CRM_MASTER_KEY") or _dev_master_key(data_dir),
            onlyfans_api_url=platform_url,
            fansly_api_url=fansly_url,
        )
        if "CRM_POOL_MAX_SIZE" not in os.environ:
            # One process, one pool for the API and every worker (a dozen projectors, the
            # relay's batches in flight): more than one service's share.
            settings = msgspec.structs.replace(settings, pool_max_size=30)
        settings = await start_patreon_simulator(settings, host, stack.on_stop)
        container = await bootstrap.build(settings)
        try:
            key = await _dev_key(container.pool, data_dir)
            facts = DevStack(
                settings=settings,
                base_url=f"http://{host}:{port}",
                key=key,
                user=DEV_USER,
                data_dir=data_dir,
                simulated=simulated,
                database_from_env=bool(os.environ.get("DATABASE_URL")),
            )
            await _serve(container, host, port, facts)
        finally:
            await container.close()
    finally:
        stack.stop()


def _simulator(
    settings: Settings, host: str, port: int, webhook_secret: str, platform: str = "onlyfans"
) -> Simulator:
    """A platform's simulator, at the platform's pace (its limiter's), sending webhooks back
    to this API for user 1: reads, PPV purchases and replies, as a lively account would.
    ``CRM_DEV_SIMULATOR`` (a JSON object of SimulatorConfig fields) changes any of it, e.g.
    ``{"reply_probability": 1}`` for an account whose fans always answer."""
    lively = SimulatorConfig(
        seed=None,
        latency=0.05,
        latency_jitter=0.1,
        rate_per_second=(
            settings.fansly_rate_limit_per_second
            if platform == "fansly"
            else settings.rate_limit_per_second
        ),
        burst=settings.fansly_rate_limit_burst
        if platform == "fansly"
        else settings.rate_limit_burst,
        webhook_url=f"http://{host}:{port}",
        webhook_secrets={DEV_USER: webhook_secret},
        delivery_probability=1.0,
        read_probability=0.6,
        click_probability=0.3,
        purchase_probability=0.3,
        reply_probability=0.2,
    )
    return Simulator(_overridden(lively, os.environ.get("CRM_DEV_SIMULATOR")))


def _overridden(config: SimulatorConfig, raw: str | None) -> SimulatorConfig:
    """``config`` with the settings ``raw`` (JSON) names, checked as the simulator checks its
    own: a mistake stops ``crm dev`` with the reason rather than running another simulator."""
    if not raw:
        return config
    # Where the webhooks go and how they are signed is this stack's, not a setting.
    settable = set(SimulatorConfig.__struct_fields__) - {"webhook_url", "webhook_secrets"}
    try:
        overrides = msgspec.json.decode(raw, type=dict[str, Any])
        unknown = sorted(set(overrides) - settable)
        if unknown:
            raise SystemExit(f"CRM_DEV_SIMULATOR: unknown simulator settings {unknown}")
        return msgspec.convert(msgspec.structs.asdict(config) | overrides, SimulatorConfig)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise SystemExit(f"CRM_DEV_SIMULATOR: {error}") from None


async def _dev_webhook_secret(database_url: str) -> str:
    """User 1's webhook secret, made once: the simulator signs with it, the API verifies."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ($1, $2)"
            " ON CONFLICT (tenant_id) DO NOTHING",
            DEV_USER,
            "whsec_" + secrets.token_urlsafe(32),
        )
        return str(
            await conn.fetchval("SELECT secret FROM webhook_secrets WHERE tenant_id = $1", DEV_USER)
        )
    finally:
        await conn.close()


async def _serve(container: bootstrap.Container, host: str, port: int, facts: DevStack) -> None:
    server = _Server(
        uvicorn.Config(
            create_app(container=container),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(run_projectors(container, stop)),
        asyncio.create_task(run_relay(container, stop)),
        asyncio.create_task(run_sender_worker(container, stop)),
        asyncio.create_task(run_campaign_worker(container, stop)),
        asyncio.create_task(run_automation_worker(container, stop)),
        asyncio.create_task(run_sealer(container, stop)),
        asyncio.create_task(run_churn_worker(container, stop)),
    ]
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    if server.started:
        print(banner(facts), flush=True)
    try:
        await serving
    finally:
        stop.set()
        await asyncio.gather(*workers)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM once it has stopped, which would kill the process before
    the embedded databases are stopped; here a signal only asks the server to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _ping_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _dev_master_key(data_dir: Path) -> str:
    """The local stack's master key: made once, kept beside the data it protects."""
    path = data_dir / "master-key"
    if not path.exists():
        # With DATABASE_URL set, no embedded Postgres made the folder first.
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_master_key() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


async def _dev_key(pool: asyncpg.Pool, data_dir: Path) -> str:
    """The development key for user 1, kept in the data folder so it survives restarts."""
    path = data_dir / "dev-api-key"
    if path.exists():
        key = path.read_text().strip()
        if await find_principal(pool, key):
            return key
    key, _ = await create_api_key(pool, user_id=DEV_USER, role="creator", label="crm dev")
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
