"""What the live stream sends beside the log, per account with clients in this process:
``queue.status`` every few seconds, and ``campaign.progress`` at most once a second per
campaign that moved. Both are summaries (``position`` null): sent outside the log's order and
never replayed; a client resumes from the updates that carry a position.

Progress figures come from the campaigns read model, which follows the log closely; a
campaign is read once more after it stops moving, so the last figures shown are settled. An
A/B test's standing comes with them (``abTest``, as GET /api/crm/campaigns/{id} answers it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import msgspec
import structlog

from adapters.http.campaign_schemas import AbTestOut
from adapters.live.updates import Update
from adapters.postgres.campaign_read_model import PostgresCampaignReadModel
from adapters.queue_status import QueueStatusReader, TenantQueueStatus
from application.campaign_queries import CampaignView

log = structlog.get_logger(__name__)

QUEUE_STATUS_SECONDS = 5.0
PROGRESS_SECONDS = 1.0
# Reads of a campaign after its last move: this one, and one more once it has settled.
_ROUNDS = 2

Offer = Callable[[str, Update], None]


class Summaries:
    def __init__(
        self,
        offer: Offer,
        tenants: Callable[[], Iterable[str]],
        queue_status: QueueStatusReader,
        campaigns: PostgresCampaignReadModel,
        queue_status_seconds: float = QUEUE_STATUS_SECONDS,
    ) -> None:
        self._offer = offer
        self._tenants = tenants
        self._queue_status = queue_status
        self._campaigns = campaigns
        self._queue_status_seconds = queue_status_seconds
        # (tenant, campaign id) -> reads of its progress still to send.
        self._moved: dict[tuple[str, int], int] = {}

    def moved(self, tenant: str, campaign_id: int) -> None:
        self._moved[(tenant, campaign_id)] = _ROUNDS

    async def queue_status_forever(self) -> None:
        while True:
            await asyncio.sleep(self._queue_status_seconds)
            for tenant in list(self._tenants()):
                try:
                    status = await self._queue_status.tenant_status(tenant)
                except Exception:
                    log.warning("queue status unavailable for the live stream", exc_info=True)
                    break
                self._offer(tenant, queue_status_update(status))

    async def progress_forever(self) -> None:
        while True:
            started = time.monotonic()
            watched = set(self._tenants())
            for key in list(self._moved):
                rounds = self._moved.pop(key)
                if rounds > 1:
                    self._moved.setdefault(key, rounds - 1)
                tenant, campaign_id = key
                if tenant not in watched:
                    continue
                try:
                    view = await self._campaigns.get_campaign(tenant, campaign_id)
                except Exception:
                    log.warning("campaign progress unavailable", exc_info=True)
                    continue
                if view is not None:
                    self._offer(tenant, await progress_with_test(view))
            await asyncio.sleep(max(0.0, PROGRESS_SECONDS - (time.monotonic() - started)))


def queue_status_update(status: TenantQueueStatus) -> Update:
    """As GET /api/onlyfans/messages/status answers an account's key."""
    at = status.last_processed_at
    return {
        "type": "queue.status",
        "position": None,
        "queueDepth": status.waiting,
        "dlqCount": status.failed,
        "lastProcessedAt": at.isoformat() if at else None,
    }


async def progress_with_test(view: CampaignView) -> Update:
    update = campaign_progress_update(view)
    if view.ab_test is not None:
        # Each variant's probability of being the best is integrated numerically (tens of
        # milliseconds with ten variants): off the event loop the streams share.
        standing = await asyncio.to_thread(AbTestOut.of, view)
        update["abTest"] = msgspec.to_builtins(standing)
    return update


def campaign_progress_update(view: CampaignView) -> Update:
    metrics = view.metrics
    return {
        "type": "campaign.progress",
        "position": None,
        "campaignId": view.campaign_id,
        "status": view.status,
        "totalRecipients": view.total_recipients,
        "remaining": view.remaining,
        "queued": metrics.queued,
        "sent": metrics.sent,
        "delivered": metrics.delivered,
        "failed": metrics.failed,
        "opened": metrics.opened,
        "clicked": metrics.clicked,
        "revenueCents": metrics.revenue_cents,
    }
