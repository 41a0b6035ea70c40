"""The `crm` command: run the local stack, the API, the workers, and operate them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import signal
import sys
import uuid
from pathlib import Path

from adapters.cli_audit import add_audit_commands
from adapters.cli_export import add_export_commands
from adapters.cli_import import add_fans_parser, add_import_parser, cli_actor, import_fans
from adapters.cli_import_transactions import add_transactions_parser, import_transactions_command
from adapters.cli_models import add_models_commands
from adapters.cli_package import add_package_parser
from adapters.cli_patreon import add_patreon_parsers
from adapters.cli_support import add_data_dir, command_settings, database_url, run_async
from adapters.config import Settings
from adapters.crypto import MasterKey, MasterKeyError, generate_master_key
from adapters.embedded import DEFAULT_DATA_DIR
from adapters.observability import configure_logging
from application.errors import ApplicationError
from domain.errors import DomainError


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except (MasterKeyError, ApplicationError, DomainError) as error:
        raise SystemExit(f"crm: {type(error).__name__}: {error}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole system on an embedded local stack")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR))
    dev.add_argument(
        "--queue",
        choices=("postgres", "sqs"),
        default="postgres",
        help="the Postgres-backed queue, or SQS on an embedded moto server",
    )
    dev.set_defaults(func=_dev)

    serve = commands.add_parser("serve", help="run the API (configured from the environment)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    add_data_dir(migrate)
    migrate.set_defaults(func=lambda a: run_async(_migrate, a))

    apikey = commands.add_parser("apikey", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = apikey.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--user", required=True, help="the user (tenant) id the key acts for")
    create.add_argument("--role", choices=("creator", "auditor", "admin"), default="creator")
    create.add_argument(
        "--tenants",
        help="auditor keys: the user ids whose history the key may read, comma-separated"
        " ('*' for all)",
    )
    create.add_argument("--label")
    add_data_dir(create)
    create.set_defaults(func=lambda a: run_async(_apikey_create, a))

    projections = commands.add_parser("projections", help="projectors").add_subparsers(
        dest="action", required=True
    )
    status = projections.add_parser("status", help="position, lag and errors of each projector")
    add_data_dir(status)
    status.set_defaults(func=lambda a: run_async(_projections_status, a))
    rebuild = projections.add_parser(
        "rebuild",
        help="replay the log into fresh tables and swap them in, while the live ones serve",
    )
    rebuild.add_argument("names", nargs="*", metavar="NAME", help="projections to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.add_argument("--batch-size", type=int, default=5000, help="events per batch (5000)")
    rebuild.add_argument(
        "--restart", action="store_true", help="drop an unfinished rebuild instead of resuming it"
    )
    add_data_dir(rebuild)
    rebuild.set_defaults(func=lambda a: run_async(_projections_rebuild, a))

    campaigns_cmd = commands.add_parser("campaigns", help="bulk campaigns").add_subparsers(
        dest="action", required=True
    )
    campaigns_status = campaigns_cmd.add_parser(
        "status", help="fan-out progress of open campaigns, and those stalled (exit 1 if any)"
    )
    add_data_dir(campaigns_status)
    campaigns_status.set_defaults(func=lambda a: run_async(_campaigns_status, a))

    dlq = commands.add_parser("dlq", help="the dead-letter queues").add_subparsers(
        dest="action", required=True
    )
    dlq_list = dlq.add_parser("list", help="the dead-lettered messages, why and when they failed")
    dlq_list.add_argument("--tenant", help="only this user's (tenant's) messages")
    add_data_dir(dlq_list)
    dlq_list.set_defaults(func=lambda a: run_async(_dlq_list, a))
    dlq_redrive = dlq.add_parser(
        "redrive", help="put dead-lettered messages back on their way, each once"
    )
    dlq_redrive.add_argument("--tenant", help="only this user's (tenant's) messages")
    dlq_redrive.add_argument("message_ids", nargs="*", help="only these (default: all)")
    add_data_dir(dlq_redrive)
    dlq_redrive.set_defaults(func=lambda a: run_async(_dlq_redrive, a))

    keys = commands.add_parser("keys", help="the master key of personal data").add_subparsers(
        dest="action", required=True
    )
    keys.add_parser("generate", help="print a new random master key").set_defaults(
        func=lambda a: print(generate_master_key())
    )
    rotate = keys.add_parser(
        "rotate", help="re-wrap every data key with a new master key (events are untouched)"
    )
    rotate.add_argument(
        "--new-key",
        help="the new master key, written --new-key=KEY (a key may start with -); default: new",
    )
    add_data_dir(rotate)
    rotate.set_defaults(func=lambda a: run_async(_keys_rotate, a))

    fans = commands.add_parser("fans", help="fans").add_subparsers(dest="action", required=True)
    erase = fans.add_parser("erase", help="erase a fan's personal data for good (GDPR)")
    erase.add_argument("--user", required=True, help="the user (tenant) the fan belongs to")
    erase.add_argument("--fan", required=True, type=int, help="the fan id")
    add_data_dir(erase)
    erase.set_defaults(func=lambda a: run_async(_fans_erase, a))

    imports = add_import_parser(commands)
    import_fans = add_fans_parser(imports)
    add_data_dir(import_fans)
    import_fans.set_defaults(func=lambda a: run_async(_import_fans, a))
    import_transactions = add_transactions_parser(imports)
    add_data_dir(import_transactions)
    import_transactions.set_defaults(func=lambda a: run_async(_import_transactions, a))

    webhooks = commands.add_parser("webhooks", help="webhook secrets").add_subparsers(
        dest="action", required=True
    )
    secret = webhooks.add_parser("secret", help="make (or replace) a user's webhook secret")
    secret.add_argument("--user", required=True)
    add_data_dir(secret)
    secret.set_defaults(func=lambda a: run_async(_webhook_secret, a))

    queues = commands.add_parser("queues", help="the SQS queues").add_subparsers(
        dest="action", required=True
    )
    create_queues = queues.add_parser(
        "create", help="create the high and normal queues and their DLQs (idempotent)"
    )
    create_queues.set_defaults(func=lambda a: run_async(_queues_create, a))

    simulate = commands.add_parser("simulate", help="simulated outside services").add_subparsers(
        dest="target", required=True
    )
    onlyfans = simulate.add_parser(
        "onlyfans", help="an OnlyFans API provider: rate limits, 5xx, timeouts, webhooks"
    )
    onlyfans.add_argument("--host", default="127.0.0.1")
    onlyfans.add_argument("--port", type=int, default=8100)
    onlyfans.add_argument("--rate", type=float, default=5.0, help="per account per s (0: none)")
    onlyfans.add_argument("--burst", type=int, default=10)
    onlyfans.add_argument("--latency", type=float, default=0.05, help="seconds per send")
    onlyfans.add_argument("--jitter", type=float, default=0.1, help="up to this much more")
    onlyfans.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx")
    onlyfans.add_argument("--timeout-rate", type=float, default=0.0, help="share that hang")
    onlyfans.add_argument("--not-found-rate", type=float, default=0.0, help="share of 404")
    onlyfans.add_argument("--seed", type=int, default=0)
    onlyfans.add_argument("--webhook-url", help="our API's base URL, to post webhooks to")
    onlyfans.add_argument("--webhook-secret", action="append", default=[], metavar="ACCOUNT=SECRET")
    onlyfans.set_defaults(func=_simulate_onlyfans)
    add_patreon_parsers(commands, simulate)

    worker = commands.add_parser("worker", help="run a long-running worker").add_subparsers(
        dest="kind", required=True
    )
    for kind, description in _WORKERS.items():
        parser_of_kind = worker.add_parser(kind, help=description)
        add_data_dir(parser_of_kind)
        parser_of_kind.set_defaults(func=lambda a, kind=kind: run_async(_worker, a, kind))
    add_audit_commands(commands)
    add_export_commands(commands)
    add_package_parser(commands)
    add_models_commands(commands)
    return parser


_WORKERS = {
    "projections": "follow the log into the read tables",
    "relay": "move committed outbox rows onto the queue",
    "sender": "send queued messages to OnlyFans (the poller)",
    "campaigns": "fan out bulk campaigns (process manager)",
    "automations": "enrol fans in sequences and send their steps when due",
    "sealer": "extend the hash chain over the log as it grows",
    "churn": "retrain each account's churn model and rescore its fans on a schedule",
}


async def _keys_rotate(args: argparse.Namespace) -> None:
    from adapters.bootstrap import master_keys
    from adapters.postgres.pool import create_pool
    from adapters.postgres.subject_keys import SubjectKeys

    settings = command_settings(args)
    current, previous = master_keys(settings)
    new_key = args.new_key or generate_master_key()
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        keys = SubjectKeys(pool, MasterKey.parse(new_key), [current, *previous])
        await keys.verify_master_key()
        rotated = await keys.rotate()
    finally:
        await pool.close()
    print(f"re-wrapped {rotated} data keys with master key {MasterKey.parse(new_key).key_id}")
    dev_key = args.data_dir / "master-key"
    if not os.environ.get("CRM_MASTER_KEY") and dev_key.exists():
        dev_key.write_text(new_key + "\n")
        print(f"the new key is kept in {dev_key}")
    elif not args.new_key:
        print(f"new master key (set CRM_MASTER_KEY to it everywhere): {new_key}")


async def _import_fans(args: argparse.Namespace) -> None:
    await import_fans(args, command_settings(args))


async def _import_transactions(args: argparse.Namespace) -> None:
    await import_transactions_command(args, command_settings(args))


async def _fans_erase(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from application.context import CommandContext
    from application.fans import EraseFan, erase_fan

    container = await bootstrap.build(command_settings(args))
    try:
        ctx = CommandContext(tenant=args.user, actor=cli_actor(), correlation_id=uuid.uuid4().hex)
        result = await erase_fan(EraseFan(fan_id=args.fan), ctx, store=container.events)
    finally:
        await container.close()
    print(f"fan {args.fan} erased at position {result.position}")


async def _webhook_secret(args: argparse.Namespace) -> None:
    from adapters.postgres.pool import create_pool

    value = "whsec_" + secrets.token_urlsafe(32)
    pool = await create_pool(database_url(args), min_size=1, max_size=1)
    try:
        await pool.execute(
            "INSERT INTO webhook_secrets (tenant_id, secret) VALUES ($1, $2)"
            " ON CONFLICT (tenant_id) DO UPDATE SET secret = $2, created_at = now()",
            args.user,
            value,
        )
    finally:
        await pool.close()
    print(f"webhook secret for user {args.user}: {value}")


async def _queues_create(args: argparse.Namespace) -> None:
    from adapters.sqs import create_queues, sqs_client

    settings = Settings.from_env(database_url="-")
    async with sqs_client(
        endpoint_url=settings.sqs_endpoint_url, region_name=settings.aws_region
    ) as client:
        urls = await create_queues(
            client,
            prefix=settings.sqs_queue_prefix,
            max_receive_count=settings.max_receive_count,
            visibility_timeout=math.ceil(settings.visibility_timeout),
        )
    for name, url in sorted(urls.items()):
        print(f"{name:<12} {url}")


async def _migrate(args: argparse.Namespace) -> None:
    from adapters.postgres.migrate import migrate

    applied = await migrate(database_url(args))
    print("\n".join(f"applied {name}" for name in applied) or "database is up to date")


def _tenant_list(text: str) -> list[str]:
    return [tenant.strip() for tenant in text.split(",") if tenant.strip()]


async def _apikey_create(args: argparse.Namespace) -> None:
    from adapters.postgres.api_keys import create_api_key, grant_tenants
    from adapters.postgres.pool import create_pool

    if args.tenants and args.role != "auditor":
        raise SystemExit("crm: --tenants is for auditor keys (a creator reads its own tenant)")
    pool = await create_pool(database_url(args), min_size=1, max_size=1)
    try:
        key, principal = await create_api_key(
            pool, user_id=args.user, role=args.role, label=args.label
        )
        if args.tenants:
            await grant_tenants(pool, principal.key_id, _tenant_list(args.tenants))
    finally:
        await pool.close()
    print(f"key id {principal.key_id}, user {principal.user_id}, role {principal.role}")
    print(f"Authorization: Bearer {key}")


async def _projections_status(args: argparse.Namespace) -> None:
    from adapters.cli_projections import status_command

    await status_command(database_url(args))


async def _campaigns_status(args: argparse.Namespace) -> None:
    from adapters.cli_campaigns import status_command

    if await status_command(database_url(args)):
        raise SystemExit(1)


async def _dlq_list(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from adapters.cli_dlq import list_command

    container = await bootstrap.build(command_settings(args))
    try:
        await list_command(container, tenant=args.tenant)
    finally:
        await container.close()


async def _dlq_redrive(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from adapters.cli_dlq import redrive_command

    container = await bootstrap.build(command_settings(args))
    try:
        await redrive_command(
            container,
            actor=cli_actor(),
            tenant=args.tenant,
            message_ids=args.message_ids or None,
        )
    finally:
        await container.close()


async def _projections_rebuild(args: argparse.Namespace) -> None:
    from adapters.cli_projections import rebuild_command

    if args.batch_size < 1:
        raise SystemExit("crm: --batch-size must be at least 1")
    await rebuild_command(
        command_settings(args), args.names, args.all, args.batch_size, restart=args.restart
    )


async def _worker(args: argparse.Namespace, kind: str) -> None:
    from adapters import bootstrap
    from worker.automations import run_automation_worker
    from worker.campaigns import run_campaign_worker
    from worker.churn import run_churn_worker
    from worker.projections import run_projectors
    from worker.relay import run_relay
    from worker.sealer import run_sealer
    from worker.sender import run_sender_worker

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    container = await bootstrap.build(command_settings(args))
    stop = _stop_on_signals()
    run = {
        "projections": run_projectors,
        "relay": run_relay,
        "sender": run_sender_worker,
        "campaigns": run_campaign_worker,
        "automations": run_automation_worker,
        "sealer": run_sealer,
        "churn": run_churn_worker,
    }[kind]
    try:
        await run(container, stop)
    finally:
        await container.close()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _preflight(settings: Settings) -> None:
    """Refuse to start with a clear message (wrong master key, no database) before uvicorn
    starts its workers, rather than in each worker's start-up."""
    from adapters import bootstrap

    container = await bootstrap.build(settings)
    await container.close()


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    asyncio.run(_preflight(settings))
    uvicorn.run(
        "adapters.http.serve:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
    )


def _simulate_onlyfans(args: argparse.Namespace) -> None:
    from adapters.onlyfans.simulator import SimulatorConfig, serve_simulator

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), json=False)
    secrets = dict(pair.partition("=")[::2] for pair in args.webhook_secret)
    webhooks = (
        # With a target, fans behave like fans: most read, some buy, a few write back.
        {
            "delivery_probability": 1.0,
            "read_probability": 0.7,
            "click_probability": 0.3,
            "purchase_probability": 0.3,
            "reply_probability": 0.2,
        }
        if args.webhook_url
        else {}
    )
    try:
        config = SimulatorConfig(
            seed=args.seed,
            latency=args.latency,
            latency_jitter=args.jitter,
            rate_per_second=args.rate or None,
            burst=args.burst,
            error_rate=args.error_rate,
            timeout_rate=args.timeout_rate,
            permanent_error_rate=args.not_found_rate,
            webhook_url=args.webhook_url,
            webhook_secrets=secrets,
            log_requests=True,
            **webhooks,
        )
    except ValueError as error:
        raise SystemExit(f"crm: {error}") from None
    with contextlib.suppress(KeyboardInterrupt):
        serve_simulator(config, args.host, args.port)


def _dev(args: argparse.Namespace) -> None:
    from adapters.dev import run_dev

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_dev(args.host, args.port, args.data_dir, args.queue))
    sys.exit(0)
