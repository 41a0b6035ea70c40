"""What the `crm` command's modules share: the data folder option, the database a command
works on, and how an async command runs."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from adapters.config import Settings
from adapters.embedded import DEFAULT_DATA_DIR
from adapters.observability import configure_logging


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help="the `crm dev` folder to use when DATABASE_URL is not set",
    )


def run_async(command: Callable[..., Coroutine[Any, Any, None]], args: Any, *more: Any) -> None:
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"), json=False)
    asyncio.run(command(args, *more))


def database_url(args: argparse.Namespace) -> str:
    """DATABASE_URL, or else the embedded Postgres of a `crm dev` data folder."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if (args.data_dir / "pg").is_dir():
        from adapters.embedded import EmbeddedStack

        return EmbeddedStack(args.data_dir).start_postgres()
    raise SystemExit(f"DATABASE_URL is not set and {args.data_dir} holds no `crm dev` database")


def command_settings(args: argparse.Namespace) -> Settings:
    """The environment's settings; the `crm dev` folder fills in what the environment lacks."""
    dev_key = args.data_dir / "master-key"
    master_key = os.environ.get("CRM_MASTER_KEY") or (
        dev_key.read_text().strip() if dev_key.exists() else None
    )
    return Settings.from_env(database_url=database_url(args), master_key=master_key)
