"""GET /api/analytics/churn: each fan's churn risk under the account's latest model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from adapters.bootstrap import Container
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.postgres.api_keys import Principal
from adapters.postgres.cursors import decode_cursor, encode_cursor
from application.churn import Factor
from application.churn_training import ChurnModelChanged, ModelNotTrained
from application.permissions import Permission

Deps = NamedDependency[Container]
PAGE = 50


class FanRiskOut(msgspec.Struct, kw_only=True, rename="camel"):
    fan_id: int
    # The probability that the fan neither writes nor buys in the next 30 days.
    risk: float
    # The features that moved the fan's risk most against an average fan, largest first.
    factors: list[Factor]


class ChurnModelOut(msgspec.Struct, kw_only=True, rename="camel"):
    version: int
    trained_at: datetime
    # The log position the model's features were read at.
    position: int
    train_cutoff: str
    validation_cutoff: str
    # Measured on the validation window (later than the training one), beside recency alone.
    metrics: dict[str, Any]


_Cursor = tuple[int, float, int]  # model version, risk, fan id


class ChurnOut(msgspec.Struct, kw_only=True, rename="camel"):
    fans: list[FanRiskOut]
    model: ChurnModelOut
    next_cursor: str | None


class ChurnController(Controller):
    path = "/api/analytics"
    tags = ["analytics"]

    @get("/churn", **requires(Permission.READ), **responses_for(conflict=True))
    async def churn(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> ChurnOut:
        """The account's live fans by churn risk, highest first, 50 a page, each with the
        three features that moved its risk most (`impact`: the feature's term in the fan's
        log-odds against an average fan; > 0 raises it). Scores come from the account's
        latest model (`crm models train churn`, or the churn worker's schedule). 409
        `model-not-trained` until a model has been trained for the account."""
        tenant = request.user.user_id
        # The cursor names the model whose ranking it walks: a retrain replaces every score,
        # and walking the new ranking from the old place would skip or repeat fans.
        version, *after = (None,) if cursor is None else decode_cursor(cursor, _Cursor)
        model, rows = await container.churn.ranked(
            tenant,
            None if version is None else tuple(after),  # type: ignore[arg-type]
            PAGE + 1,
        )
        if model is None:
            raise ModelNotTrained("no churn model has been trained for this account yet")
        if version is not None and version != model["version"]:
            raise ChurnModelChanged(
                f"the churn model was retrained (version {model['version']}) since this"
                f" cursor's page (version {version}): start again from the first page"
            )
        fans = [
            FanRiskOut(
                fan_id=row["fan_id"],
                risk=row["risk"],
                factors=msgspec.convert(row["factors"], list[Factor]),
            )
            for row in rows[:PAGE]
        ]
        last = fans[-1] if len(rows) > PAGE else None
        return ChurnOut(
            fans=fans,
            model=ChurnModelOut(
                version=model["version"],
                trained_at=model["trained_at"],
                position=model["position"],
                train_cutoff=model["train_cutoff"].isoformat(),
                validation_cutoff=model["validation_cutoff"].isoformat(),
                metrics=model["metrics"],
            ),
            next_cursor=None
            if last is None
            else encode_cursor(model["version"], last.risk, last.fan_id),
        )
