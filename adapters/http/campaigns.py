"""/api/messages/bulk (the reference's bulk send) and /api/crm/campaigns (its
CampaignsRepository: create, update status, pause, resume, cancel, metrics)."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from adapters import metrics
from adapters.bootstrap import Container
from adapters.http.campaign_schemas import (
    AbTestOut,
    BulkAcceptedOut,
    BulkMessageBody,
    CampaignChangedOut,
    CampaignListOut,
    CampaignOut,
    CreateCampaignBody,
    MetricsOut,
    RecipientFailureOut,
    StatusBody,
)
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.permissions import require, requires
from adapters.http.problems import problem
from adapters.http.schemas import decode_strictly
from adapters.postgres.api_keys import Principal
from application import campaigns
from application.campaign_launch import launch_bulk
from application.context import CommandContext
from application.errors import NotFound
from application.permissions import Permission
from domain.campaign import Campaign

Deps = NamedDependency[Container]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
MinPosition = Annotated[int | None, QueryParameter(name="minPosition", ge=1, le=2**63 - 1)]
log = structlog.get_logger(__name__)
BULK_MAX_BODY = 4 * 1024 * 1024
_LIFECYCLE = responses_for(params=False, found=True, idempotent=True)


class BulkMessagesController(Controller):
    path = "/api/messages"
    tags = ["campaigns"]

    # 100,000 explicit recipient ids take up to ~2 MB of JSON.
    @post(
        "/bulk",
        status_code=202,
        request_max_body_size=BULK_MAX_BODY,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **responses_for(body=True, idempotent=True, lagging=True),
    )
    async def bulk(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[BulkMessageBody],
        min_position: MinPosition = None,
    ) -> Response[BulkAcceptedOut]:
        """Create a campaign and start it; the fan-out continues in the campaign worker.
        ``minPosition``: the audience includes the fans written up to that position."""
        body = decode_strictly(await request.body(), BulkMessageBody)
        if body.sells:
            require(request.user, Permission.SEND_PPV)
        ctx = command_context(request)
        await read_your_writes(request, container, _audience_views(body), min_position)

        async def run() -> Response[Any]:
            return await _launch(container, ctx, body.command())

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)


class CampaignsController(Controller):
    path = "/api/crm/campaigns"
    tags = ["campaigns"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_campaigns(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> CampaignListOut:
        await _wait(request, container, min_position)
        page = await container.campaigns.list_campaigns(request.user.user_id, limit, cursor, status)
        return CampaignListOut(
            campaigns=[CampaignOut.from_view(v) for v in page.campaigns],
            next_cursor=page.next_cursor,
        )

    @post(
        request_max_body_size=BULK_MAX_BODY,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **responses_for(
            body=True,
            idempotent=True,
            lagging=True,
            success={201: CampaignChangedOut, 202: BulkAcceptedOut},
        ),
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[CreateCampaignBody],
        min_position: MinPosition = None,
    ) -> Response[Any]:
        """A draft; with ``status: "active"`` it is launched at once (202, as the bulk send)."""
        body = decode_strictly(await request.body(), CreateCampaignBody)
        if body.bulk().sells:
            require(request.user, Permission.SEND_PPV)
        ctx = command_context(request)
        await read_your_writes(request, container, _audience_views(body.bulk()), min_position)

        async def run() -> Response[Any]:
            cmd = body.bulk().command()
            if body.status == "active":
                return await _launch(container, ctx, cmd)
            campaign, position = await campaigns.create_campaign(
                cmd, ctx, store=container.events, ids=container.ids
            )
            return Response(
                CampaignChangedOut(
                    id=campaign.campaign_id, status=campaign.status, position=position
                ),
                status_code=201,
            )

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @get(
        "/{campaign_id:int}",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def get_campaign(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        campaign_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> dict[str, CampaignOut]:
        await _wait(request, container, min_position)
        view = await container.campaigns.get_campaign(request.user.user_id, campaign_id)
        if view is None:
            raise NotFound(f"campaign {campaign_id}")
        return {"campaign": CampaignOut.from_view(view)}

    @get(
        "/{campaign_id:int}/metrics",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def get_metrics(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        campaign_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> dict[str, Any]:
        await _wait(request, container, min_position)
        view = await container.campaigns.get_campaign(request.user.user_id, campaign_id)
        if view is None:
            raise NotFound(f"campaign {campaign_id}")
        answer: dict[str, Any] = {
            "campaignId": campaign_id,
            "metrics": MetricsOut.from_metrics(view.metrics),
        }
        test = AbTestOut.of(view)
        if test is not None:
            answer["abTest"] = test
        return answer

    @patch(
        "/{campaign_id:int}",
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **responses_for(body=True, found=True, conflict=True),
    )
    async def update_status(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        campaign_id: FromPath[int],
        data: JSONBody[StatusBody],
    ) -> CampaignChangedOut:
        body = decode_strictly(await request.body(), StatusBody)
        return await _change(container, request, campaign_id, body.status)

    @post(
        "/{campaign_id:int}/pause",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **_LIFECYCLE,
    )
    async def pause(
        self, request: Request[Principal, Any, Any], container: Deps, campaign_id: FromPath[int]
    ) -> Response[CampaignChangedOut]:
        return await _change_once(container, request, campaign_id, "paused")

    @post(
        "/{campaign_id:int}/resume",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **_LIFECYCLE,
    )
    async def resume(
        self, request: Request[Principal, Any, Any], container: Deps, campaign_id: FromPath[int]
    ) -> Response[CampaignChangedOut]:
        return await _change_once(container, request, campaign_id, "resume")

    @post(
        "/{campaign_id:int}/cancel",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **_LIFECYCLE,
    )
    async def cancel(
        self, request: Request[Principal, Any, Any], container: Deps, campaign_id: FromPath[int]
    ) -> Response[CampaignChangedOut]:
        return await _change_once(container, request, campaign_id, "cancelled")


async def _launch(
    container: Container, ctx: CommandContext, cmd: campaigns.CreateCampaign
) -> Response[Any]:
    try:
        launched = await launch_bulk(
            cmd,
            ctx,
            store=container.events,
            ids=container.ids,
            audience=container.campaigns,
            queued_ahead=lambda: _queued_ahead(container),
            inline_recipients=container.settings.campaign_inline_recipients,
            rate_per_second=container.settings.rate_limit_per_second,
            pricing=container.pricing,
        )
    except campaigns.NoRecipients as error:
        return problem(
            422,
            str(error),
            field="recipientIds",
            errors=[{"recipientId": f.recipient_id, "error": f.error} for f in error.failures],
        )
    campaign = launched.campaign
    metrics.campaign_launched(ctx.tenant, campaign.total_recipients)
    if campaign.ab_test is not None:
        metrics.ab_test_launched(ctx.tenant, campaign.ab_test.goal)
    if launched.created:
        # Campaign messages always take the normal queue (domain.message.queue_for).
        metrics.message_queued(ctx.tenant, "normal", launched.created)
    for what, why in launched.left_out:
        log.warning(f"campaign {what} left out", campaign_id=campaign.campaign_id, error=why)
    log.info(
        "campaign launched",
        campaign_id=campaign.campaign_id,
        tenant=ctx.tenant,
        recipients=campaign.total_recipients,
        queued_inline=launched.queued,
    )
    return Response(
        BulkAcceptedOut(
            campaign_id=campaign.campaign_id,
            total_recipients=launched.requested,
            queued=launched.queued,
            failed=launched.failed,
            estimated_completion_time=launched.estimated_completion,
            status=launched.status,
            failures=[RecipientFailureOut(f.recipient_id, f.error) for f in launched.failures],
            position=launched.position,
        ),
        status_code=202,
    )


async def _queued_ahead(container: Container) -> int:
    status = await container.queue_status.status()
    return status.queues["high"].visible + status.queues["normal"].visible


async def _change(
    container: Container,
    request: Request[Principal, Any, Any],
    campaign_id: int,
    status: campaigns.StatusChange,
) -> CampaignChangedOut:
    ctx = command_context(request)
    if status == "active" and not request.user.may(Permission.SEND_PPV):
        # Launching a priced draft sends PPVs, as a priced bulk send does.
        draft, _ = await campaigns.load_campaign(container.events, campaign_id, tenant=ctx.tenant)
        if draft.status == "draft" and draft.sells:
            require(request.user, Permission.SEND_PPV)

    def launched(draft: Campaign) -> None:  # a draft this request launched (PATCH active)
        metrics.campaign_launched(ctx.tenant, draft.total_recipients)
        if draft.ab_test is not None:
            metrics.ab_test_launched(ctx.tenant, draft.ab_test.goal)

    campaign, position = await campaigns.change_status(
        campaign_id,
        status,
        ctx,
        store=container.events,
        audience=container.campaigns,
        on_launch=launched,
    )
    log.info("campaign status changed", campaign_id=campaign_id, status=campaign.status)
    return CampaignChangedOut(id=campaign.campaign_id, status=campaign.status, position=position)


async def _change_once(
    container: Container,
    request: Request[Principal, Any, Any],
    campaign_id: int,
    status: campaigns.StatusChange,
) -> Response[Any]:
    """A lifecycle POST (pause, resume, cancel), with its Idempotency-Key honoured."""

    async def run() -> Response[Any]:
        return Response(await _change(container, request, campaign_id, status))

    tenant = command_context(request).tenant
    return await replay_or_run(container.idempotency, request, tenant, run)


async def _wait(
    request: Request[Principal, Any, Any], container: Container, position: int | None
) -> None:
    await read_your_writes(
        request, container, ["campaigns", "campaign_metrics", "campaign_variants"], position
    )


def _audience_views(body: BulkMessageBody) -> list[str]:
    """The views a launch reads its audience from, which must hold the caller's writes: none
    for explicit ids (each one the fans view lacks is looked up in the log), the fans (and
    their conversations, for activity) for a segment."""
    if body.recipient_ids is not None:
        return []
    if body.segment is not None and body.segment.active_since is not None:
        return ["fans", "conversations"]
    return ["fans"]
