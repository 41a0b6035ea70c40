"""/api/analytics: revenue per fan per day, fan cohorts with spend and churn, campaign
revenue per day — views replayed from the log (see projections/analytics_*.py)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
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
from adapters.postgres.member_analytics_read_model import AccountFigures, MemberFigures
from application.errors import Forbidden, NotFound
from application.permissions import Permission
from application.pricing import PricePosterior, recommend
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


class MembersOut(msgspec.Struct, kw_only=True, rename="camel"):
    since: date = msgspec.field(name="from")
    until: date = msgspec.field(name="to")
    accounts: list[AccountFigures]
    members: list[MemberFigures]


class PricingOut(msgspec.Struct, kw_only=True, rename="camel"):
    recommended_price_cents: int
    prices: list[PricePosterior]
    basis: str
    # The log position the counts have seen.
    model_position: int


MEMBER_DAYS = 30  # the span asked when none is given
MAX_MEMBER_DAYS = 366


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

    @get("/members", **requires(Permission.READ), **responses_for(lagging=True))
    async def members(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        since: Since = None,
        until: Until = None,
        account_id: Annotated[
            str | None,
            QueryParameter(name="accountId", max_length=200, description="One account only"),
        ] = None,
        member_id: Annotated[
            str | None,
            QueryParameter(name="memberId", max_length=200, description="One member only"),
        ] = None,
    ) -> MembersOut:
        """Per member and per creator account, day by day (UTC) over the accounts the caller
        may act on: messages and PPV sent, PPV bought and the revenue they earned, fans'
        replies they drew, conversations handled, answers and the median time fans waited for
        one. `from`/`to` default to the last 30 days; at most 366. A member who does not
        manage members sees its own figures only. What nobody sent (keys of the first
        release) shows as `memberId: null`."""
        principal = request.user
        until = until or datetime.now(UTC).date()
        since = since or until - timedelta(days=MEMBER_DAYS - 1)
        _check_range(since, until)
        if (until - since).days >= MAX_MEMBER_DAYS:
            raise InvalidValue("from", f"the span must be at most {MAX_MEMBER_DAYS} days")
        await read_your_writes(request, container, ["analytics_members"])
        view = container.member_analytics
        accounts = list(principal.accounts or [])
        if principal.accounts is None:
            accounts = await view.workspace_accounts(principal.workspace_id or principal.user_id)
        if account_id is not None:
            if account_id not in accounts:
                raise InvalidValue("account_id", "not an account this key may act on")
            accounts = [account_id]
        if principal.member_id is not None and not principal.may(Permission.MANAGE_MEMBERS):
            if member_id not in (None, principal.member_id):
                raise Forbidden("a member who does not manage members sees its own figures only")
            member_id = principal.member_id
        members, by_account = await view.figures(
            principal.workspace_id or principal.user_id,
            accounts,
            since,
            until,
            member_id=member_id,
        )
        return MembersOut(since=since, until=until, accounts=by_account, members=members)

    @get("/pricing", **requires(Permission.READ), **responses_for(lagging=True))
    async def pricing(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        fan_id: Annotated[int | None, QueryParameter(name="fanId", ge=1, le=2**63 - 1)] = None,
    ) -> PricingOut:
        """The PPV price to offer next, drawn by Thompson sampling over a grid of prices (so
        it varies from call to call while the evidence is thin), and each grid price's offers
        (priced messages sent), purchases, posterior mean buying rate and expected revenue
        per offer. With `fanId`: the fan's own posterior (shrunk towards the account's) once
        it has had 20 offers (`basis: "fan"`), else the account's (`basis: "account"`). An
        offer is a priced message the platform took; a purchase, one bought."""
        await read_your_writes(request, container, ["pricing", "fans"])
        if (
            fan_id is not None
            and await container.fans.get_fan(request.user.user_id, fan_id) is None
        ):
            # Another account's fan is no fan here, as on every route (never its figures).
            raise NotFound(f"fan {fan_id}")
        account, fan = await container.pricing.counts(request.user.user_id, fan_id)
        position = await container.pricing.position()
        rng = random.Random()  # noqa: S311 - exploration, not secrecy
        chosen = recommend(account, rng, fan)
        return PricingOut(
            recommended_price_cents=chosen.price_cents,
            prices=list(chosen.prices),
            basis=chosen.basis,
            model_position=position,
        )


def _check_range(since: date | None, until: date | None) -> None:
    if since is not None and until is not None and since > until:
        raise InvalidValue("from", "must not be after to")
