"""`crm export events|tables --to DIR`: the log and the read models as Parquet, pseudonymised."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.cli_support import add_data_dir, command_settings, run_async


def add_export_commands(commands: Any) -> None:
    export = commands.add_parser(
        "export", help="Parquet files for a warehouse, without personal data"
    ).add_subparsers(dest="action", required=True)
    events = export.add_parser(
        "events",
        help="the log, partitioned by UTC day and event type; a second run adds only what is new",
    )
    events.add_argument("--to", required=True, metavar="DIR|s3://BUCKET/PREFIX")
    events.add_argument("--batch-size", type=int, default=10_000)
    add_data_dir(events)
    events.set_defaults(func=lambda a: run_async(_events, a))
    tables = export.add_parser("tables", help="the read models, one file per table (replaced)")
    tables.add_argument("--to", required=True, metavar="DIR|s3://BUCKET/PREFIX")
    add_data_dir(tables)
    tables.set_defaults(func=lambda a: run_async(_tables, a))


async def _events(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from adapters.export.destinations import open_destination
    from adapters.export.events import export_events
    from adapters.export.pseudonyms import load_pseudonyms

    if args.batch_size < 1:
        raise SystemExit("crm: --batch-size must be at least 1")
    settings = command_settings(args)
    current, previous = bootstrap.master_keys(settings)
    container = await bootstrap.build(settings)
    try:
        pseudonyms = await load_pseudonyms(container.pool, [current, *previous])
        async with open_destination(args.to, settings.aws_region) as destination:
            report = await export_events(container.events, pseudonyms, destination, args.batch_size)
    finally:
        await container.close()
    print(report.summary())


async def _tables(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from adapters.export.destinations import open_destination
    from adapters.export.pseudonyms import load_pseudonyms
    from adapters.export.tables import export_tables

    settings = command_settings(args)
    current, previous = bootstrap.master_keys(settings)
    container = await bootstrap.build(settings)
    try:
        pseudonyms = await load_pseudonyms(container.pool, [current, *previous])
        async with open_destination(args.to, settings.aws_region) as destination:
            written = await export_tables(container.pool, pseudonyms, destination)
    finally:
        await container.close()
    for name, rows in written.items():
        print(f"{name}: {rows} rows")
