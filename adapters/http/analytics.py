"""/api/analytics: revenue per fan per day, fan cohorts with spend and churn, campaign
revenue per day — views replayed from the log (see projections/analytics_*.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from adapters.bootstrap import Container
from adapters.http.context import read_your_writes
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.postgres.analytics_read_model import (
    CHURN_AFTER,
    COHORT_BY,
    CampaignRevenueDay,
    Cohort,
    FanRevenueDay,
)
from adapters.postgres.api_keys import Principal
from application.permissions import Permission
from domain.errors import InvalidValue

Deps = NamedDependency[Container]
Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Since = Annotated[date | None, QueryParameter(name="from", description="First UTC day (ISO)")]
Until = Annotated[date | None, QueryParameter(name="to", description="Last UTC day (ISO)")]
Cursor = Annotated[str | None, QueryParameter(max_length=200)]


class FanRevenueOut(msgspec.Struct, kw_only=True, rename="camel"):
    days: list[FanRevenueDay]
    next_cursor: str | None


class CampaignRevenueOut(msgspec.Struct, kw_only=True, rename="camel"):
    days: list[CampaignRevenueDay]
    next_cursor: str | None


class CohortsOut(msgspec.Struct, kw_only=True, rename="camel"):
    as_of: datetime
    churn_after_days: int
    # The bases cohorts are formed by, in order of precedence; each cohort counts its fans
    # placed by each.
    cohort_by: list[str]
    cohorts: list[Cohort]


class AnalyticsController(Controller):
    path = "/api/analytics"
    tags = ["analytics"]

    @get("/fans/revenue", **requires(Permission.READ), **responses_for(lagging=True))
    async def fan_revenue(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        since: Since = None,
        until: Until = None,
        fan_id: Annotated[int | None, QueryParameter(name="fanId")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> FanRevenueOut:
        _check_range(since, until)
        await read_your_writes(request, container, ["analytics_fan_revenue"])
        page = await container.analytics.fan_revenue(
            request.user.user_id,
            since=since,
            until=until,
            fan_id=fan_id,
            limit=limit,
            cursor=cursor,
        )
        return FanRevenueOut(days=page.items, next_cursor=page.next_cursor)

    @get("/campaigns/revenue", **requires(Permission.READ), **responses_for(lagging=True))
    async def campaign_revenue(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        since: Since = None,
        until: Until = None,
        campaign_id: Annotated[int | None, QueryParameter(name="campaignId")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> CampaignRevenueOut:
        _check_range(since, until)
        await read_your_writes(request, container, ["analytics_campaign_revenue"])
        page = await container.analytics.campaign_revenue(
            request.user.user_id,
            since=since,
            until=until,
            campaign_id=campaign_id,
            limit=limit,
            cursor=cursor,
        )
        return CampaignRevenueOut(days=page.items, next_cursor=page.next_cursor)

    @get("/cohorts", **requires(Permission.READ), **responses_for(lagging=True))
    async def cohorts(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        since: Since = None,
        until: Until = None,
    ) -> CohortsOut:
        """Fans by the month they subscribed in (`subscribedAt`), or, when that is not known,
        the UTC month fancrm first saw them; each cohort counts the fans placed each way.
        Churned: no message from the fan and no purchase in the 30 days before now (the time
        of the request)."""
        _check_range(since, until)
        await read_your_writes(request, container, ["analytics_cohorts"])
        now = datetime.now(UTC)
        cohorts = await container.analytics.cohorts(
            request.user.user_id, now=now, since=since, until=until
        )
        return CohortsOut(
            as_of=now,
            churn_after_days=CHURN_AFTER.days,
            cohort_by=list(COHORT_BY),
            cohorts=cohorts,
        )


def _check_range(since: date | None, until: date | None) -> None:
    if since is not None and until is not None and since > until:
        raise InvalidValue("from", "must not be after to")
