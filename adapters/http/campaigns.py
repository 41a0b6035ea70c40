"""/api/messages/bulk (the reference's bulk send) and /api/crm/campaigns (its
CampaignsRepository: create, update status, pause, resume, cancel, metrics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from adapters import metrics
from adapters.bootstrap import Container
from adapters.http.campaign_schemas import (
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
from adapters.http.permissions import requires
from adapters.http.problems import problem
from adapters.http.schemas import decode_strictly
from adapters.postgres.api_keys import Principal
from application import campaigns
from application.campaign_fan_out import ChunkResult, fan_out_chunk
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
        **requires(Permission.WRITE),
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
        **requires(Permission.WRITE),
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
        return {"campaignId": campaign_id, "metrics": MetricsOut.from_metrics(view.metrics)}

    @patch(
        "/{campaign_id:int}",
        **requires(Permission.WRITE),
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

    @post("/{campaign_id:int}/pause", status_code=200, **requires(Permission.WRITE), **_LIFECYCLE)
    async def pause(
        self, request: Request[Principal, Any, Any], container: Deps, campaign_id: FromPath[int]
    ) -> Response[CampaignChangedOut]:
        return await _change_once(container, request, campaign_id, "paused")

    @post("/{campaign_id:int}/resume", status_code=200, **requires(Permission.WRITE), **_LIFECYCLE)
    async def resume(
        self, request: Request[Principal, Any, Any], container: Deps, campaign_id: FromPath[int]
    ) -> Response[CampaignChangedOut]:
        return await _change_once(container, request, campaign_id, "resume")

    @post("/{campaign_id:int}/cancel", status_code=200, **requires(Permission.WRITE), **_LIFECYCLE)
    async def cancel(
        self, request: Request[Principal, Any, Any], container: Deps, campaign_id: FromPath[int]
    ) -> Response[CampaignChangedOut]:
        return await _change_once(container, request, campaign_id, "cancelled")


async def _launch(
    container: Container, ctx: CommandContext, cmd: campaigns.CreateCampaign
) -> Response[Any]:
    try:
        launched = await campaigns.launch_new_campaign(
            cmd, ctx, store=container.events, ids=container.ids, audience=container.campaigns
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
    # A small audience is queued before answering, unless its chunk met a stale view (the
    # worker waits for it, a request won't); a large one is all the worker's: queueing its
    # first hundred here cost the 202 ~20 ms and saved the worker one poll.
    inline = container.settings.campaign_inline_recipients
    first = (
        await _fan_out_inline(container, campaign, inline)
        if campaign.total_recipients <= inline
        else None
    )
    queued = first.queued if first else 0
    if first:
        # Campaign messages always take the normal queue (domain.message.queue_for).
        metrics.message_queued(ctx.tenant, "normal", first.created)
    failed = len(launched.failures) + (first.skipped if first else 0)
    # Every id asked for, refused ones included, so that queued + failed adds up to it once
    # the audience is queued (the campaign itself counts only the fans it sends to).
    requested = campaign.total_recipients + len(launched.failures)
    if cmd.scheduled_at is not None and cmd.scheduled_at > datetime.now(UTC):
        status = "scheduled"
    else:
        status = "queued" if first and first.finished else "queueing"
    log.info(
        "campaign launched",
        campaign_id=campaign.campaign_id,
        tenant=ctx.tenant,
        recipients=campaign.total_recipients,
        queued_inline=queued,
    )
    return Response(
        BulkAcceptedOut(
            campaign_id=campaign.campaign_id,
            total_recipients=requested,
            queued=queued,
            failed=failed,
            estimated_completion_time=await _estimate(container, campaign.total_recipients, cmd),
            status=status,
            failures=[RecipientFailureOut(f.recipient_id, f.error) for f in launched.failures],
            position=first.position if first else launched.position,
        ),
        status_code=202,
    )


async def _fan_out_inline(
    container: Container, campaign: Campaign, inline: int
) -> ChunkResult | None:
    """The campaign is launched (committed): a failure to queue its first chunk here leaves
    that chunk to the campaign worker rather than turn the launch into an error, which a
    client would retry into a second campaign."""
    try:
        return await fan_out_chunk(
            campaign.campaign_id,
            store=container.events,
            audience=container.campaigns,
            ids=container.ids,
            chunk_size=inline,
            attempts=1,
            loaded=campaign,
        )
    except Exception:
        log.warning("inline fan-out left to the worker", campaign_id=campaign.campaign_id)
        return None


async def _estimate(
    container: Container, recipients: int, cmd: campaigns.CreateCampaign
) -> datetime | None:
    """When the last message should be sent: the campaign waits behind everything already on
    the queues (replies and earlier campaigns), then goes at the account's send rate. None when
    the queues cannot be counted now: the campaign is launched, whatever the estimate."""
    try:
        status = await container.queue_status.status()
    except Exception as error:
        log.warning("campaign estimate left out", error=type(error).__name__)
        return None
    ahead = status.queues["high"].visible + status.queues["normal"].visible
    start = max(cmd.scheduled_at or datetime.now(UTC), datetime.now(UTC))
    seconds = (ahead + recipients) / container.settings.rate_limit_per_second
    return start + timedelta(seconds=seconds)


async def _change(
    container: Container,
    request: Request[Principal, Any, Any],
    campaign_id: int,
    status: campaigns.StatusChange,
) -> CampaignChangedOut:
    ctx = command_context(request)

    def launched(draft: Campaign) -> None:  # a draft this request launched (PATCH active)
        metrics.campaign_launched(ctx.tenant, draft.total_recipients)

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
    await read_your_writes(request, container, ["campaigns", "campaign_metrics"], position)


def _audience_views(body: BulkMessageBody) -> list[str]:
    """The views a launch reads its audience from, which must hold the caller's writes: none
    for explicit ids (each one the fans view lacks is looked up in the log), the fans (and
    their conversations, for activity) for a segment."""
    if body.recipient_ids is not None:
        return []
    if body.segment is not None and body.segment.active_since is not None:
        return ["fans", "conversations"]
    return ["fans"]
