"""`crm models train churn`: train each account's churn model now and rescore its fans.

The churn_activity view is first brought up to the log's head (as the projector worker would),
so the model's position is the head's at that moment. One JSON line per account on stdout:
its new version, the log position, the validation figures and how many fans were scored, or
why it was not trained.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time
from typing import Any

import msgspec

from adapters.cli_support import add_data_dir, command_settings, run_async


def add_models_commands(commands: Any) -> None:
    models = commands.add_parser("models", help="predictive models").add_subparsers(
        dest="action", required=True
    )
    train = models.add_parser("train", help="train a model now").add_subparsers(
        dest="model", required=True
    )
    churn = train.add_parser(
        "churn", help="each account's churn model, validated on a later window; rescores fans"
    )
    churn.add_argument("--user", help="one account (tenant) only; default: every account")
    churn.add_argument(
        "--as-of",
        type=_as_of_day,
        help="train as on this UTC day (YYYY-MM-DD), e.g. over an imported history; default today",
    )
    add_data_dir(churn)
    churn.set_defaults(func=lambda a: run_async(_train_churn, a))


def _as_of_day(text: str) -> date:
    """A past or present UTC day: a model dated in the future would hold back the worker's
    retraining (and the atRisk trigger's runs) until that day."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None
    if not date(2000, 1, 1) <= day <= datetime.now(UTC).date():
        raise argparse.ArgumentTypeError(f"{day} is not between 2000-01-01 and today (UTC)")
    return day


async def _train_churn(args: argparse.Namespace) -> None:
    from adapters import bootstrap
    from adapters.churn_fit import fit_logistic
    from application.churn_training import ModelNotTrained, train_churn
    from projections.churn_activity import ChurnActivityProjection
    from projections.runner import ProjectionRunner

    now = datetime.now(UTC)
    if args.as_of is not None:
        now = datetime.combine(args.as_of, time(23, 59, 59), tzinfo=UTC)
    container = await bootstrap.build(command_settings(args))
    trained = 0
    try:
        runner = ProjectionRunner(container.projection_store, ChurnActivityProjection())
        await runner.catch_up()
        tenants = [args.user] if args.user else await container.churn.tenants()
        for tenant in tenants:
            try:
                outcome = await train_churn(container.churn, fit_logistic, tenant, now=now)
            except ModelNotTrained as reason:
                print(
                    msgspec.json.encode(
                        {"user": tenant, "trained": False, "reason": str(reason)}
                    ).decode()
                )
                continue
            trained += 1
            model = outcome.model
            line = {
                "user": tenant,
                "trained": True,
                "version": outcome.version,
                "position": model.position,
                "trainCutoff": model.train_cutoff,
                "validationCutoff": model.validation_cutoff,
                "metrics": model.metrics,
                "scored": outcome.scored,
            }
            print(msgspec.json.encode(line).decode())
    finally:
        await container.close()
    if not trained:
        print("crm: no churn model trained (not enough history)", file=sys.stderr)
        raise SystemExit(1)
