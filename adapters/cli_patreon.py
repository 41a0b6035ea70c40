"""`crm patreon sync --user ID`: the user's Patreon member syncs, as POST /api/platforms/
connections/{id}/sync runs them, each page reported on stderr and the summaries (JSON) on
stdout; and `crm simulate patreon`, the Patreon API simulator on a port of its own."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from typing import Any

import msgspec

from adapters.cli_import import cli_actor
from adapters.cli_support import add_data_dir, command_settings, run_async
from adapters.patreon.client import DEFAULT_PAGE_SIZE
from application.context import CommandContext
from application.patreon_sync import Checkpoint


def add_patreon_parsers(commands: Any, simulate: Any) -> None:
    patreon = commands.add_parser("patreon", help="Patreon connections").add_subparsers(
        dest="action", required=True
    )
    sync = patreon.add_parser("sync", help="sync the members of a user's Patreon connections")
    sync.add_argument("--user", required=True, help="the user (tenant) whose connections")
    sync.add_argument("--connection", help="only this connection (its id)")
    sync.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    add_data_dir(sync)
    sync.set_defaults(func=lambda a: run_async(_sync, a))

    simulator = simulate.add_parser("patreon", help="Patreon API v2: campaign members, paged")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8200)
    simulator.add_argument("--members", type=int, default=250)
    simulator.add_argument("--page-size", type=int, default=100)
    simulator.add_argument("--campaign", default="1000")
    simulator.add_argument("--token", default="patreon-dev-token")
    simulator.set_defaults(func=_simulate)


async def _sync(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from adapters.patreon.sync import sync_connection

    container = await bootstrap.build(command_settings(args))
    try:
        connections = [
            c
            for c in await container.connections.list(args.user)
            if c.platform == "patreon" and args.connection in (None, c.id)
        ]
        if not connections:
            raise SystemExit(f"user {args.user} has no such Patreon connection")
        for connection in connections:
            started = time.monotonic()

            async def report(checkpoint: Checkpoint, started: float = started) -> None:
                sys.stderr.write(
                    f"\rpage {checkpoint.pages:,} ({time.monotonic() - started:,.1f} s)"
                )
                sys.stderr.flush()

            ctx = CommandContext(
                tenant=args.user, actor=cli_actor(), correlation_id=uuid.uuid4().hex
            )
            result = await sync_connection(
                container, connection, ctx, page_size=args.page_size, on_page=report
            )
            seconds = time.monotonic() - started
            sys.stderr.write("\n")
            summary = {
                "connectionId": connection.id,
                **msgspec.structs.asdict(result),
                "seconds": round(seconds, 2),
                "membersPerSecond": round(result.members / max(seconds, 1e-6), 1),
            }
            print(msgspec.json.encode(summary).decode())
    finally:
        await container.close()


def _simulate(args: argparse.Namespace) -> None:
    from adapters.patreon.simulator import PatreonSimulator, PatreonSimulatorConfig

    config = PatreonSimulatorConfig(
        campaign_id=args.campaign,
        access_token=args.token,
        members=args.members,
        page_size=args.page_size,
    )
    simulator = PatreonSimulator(config, host=args.host, port=args.port).start()
    print(f"Patreon simulator on {simulator.url} (campaign {args.campaign})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
