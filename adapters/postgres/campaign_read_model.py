"""Hand-written SQL over the campaigns, campaign_metrics, fans and conversations read tables:
the campaign queries of the API, the audience of a campaign, and the campaign worker's board."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from adapters.postgres.event_store import PostgresEventStore, questions
from adapters.postgres.projection_store import PostgresProjectionStore
from application.ab_results import VariantCounts
from application.campaign_queries import (
    AbTestView,
    CampaignMetrics,
    CampaignPage,
    CampaignView,
    VariantView,
)
from application.campaigns import AudienceChunk, Recipient, Segment
from application.churn import AT_RISK
from application.errors import ConcurrencyError
from domain.campaign import Campaign
from domain.fan import Fan, fan_stream_id
from domain.variants import AbTest

_BIGINT = range(-(2**63), 2**63)
# How long a status change or a fan-out chunk waits for the campaign's turn.
TURN_TIMEOUT_SECONDS = 10

_CAMPAIGN = """
SELECT c.campaign_id, c.tenant_id AS tenant, c.name, c.kind, c.status, c.content, c.attachments,
       c.price_cents, c.priority, c.recipient_count, c.segment, c.scheduled_at,
       c.total_recipients, c.skipped, c.fanned_out_at, c.created_at, c.launched_at,
       c.finished_at, c.updated_at, c.version,
       c.variants, c.ab_test, c.awaiting_winner, c.winner, c.decided_at, c.auto_price,
       m.queued, m.sent, m.delivered, m.failed, m.held, m.cancelled, m.opened, m.clicked,
       m.revenue_cents
FROM campaigns c LEFT JOIN campaign_metrics m USING (campaign_id)
"""

# The conversation id comes from the fan's own row, with the version that recorded it: from
# the conversations view (another projector, maybe further behind) a fan could look
# conversation-less at a version that already opened one, and get a second.
_RECIPIENT = """
SELECT f.fan_id, f.version, f.platform, f.name, f.handle, f.conversation_id FROM fans f
"""

# Any of the segment's tags; at least the minimum value; a message either way, or joined,
# since the date.
_SEGMENT = """
  AND (cardinality($2::text[]) = 0 OR f.tags && $2::text[])
  AND ($3::bigint IS NULL OR f.value_cents >= $3)
  AND ($4::timestamptz IS NULL OR coalesce(c.last_message_at, f.created_at) >= $4)
"""

_METRICS = tuple(CampaignMetrics.__struct_fields__)
_TEST_COLUMNS = ("variants", "ab_test", "awaiting_winner", "winner", "decided_at")
_COUNTS = tuple(VariantCounts.__struct_fields__)


def _at_risk(at_risk: bool) -> str:
    """The segment's ``atRisk``: fans whose latest churn score is at risk (a constant of the
    application, written into the statement: the only value it takes)."""
    if not at_risk:
        return ""
    return (
        " AND EXISTS (SELECT FROM churn_scores s WHERE s.tenant_id = f.tenant_id"
        f" AND s.fan_id = f.fan_id AND s.risk >= {float(AT_RISK)!r})"
    )


def _activity_join(active_since: datetime | None) -> str:
    """What _SEGMENT's "active since" reads (c.last_message_at): the fans' conversations when
    the segment asks for it, else a stand-in row, so that nothing else pays for the join."""
    if active_since is not None:
        return " LEFT JOIN conversations c ON c.fan_id = f.fan_id"
    return " CROSS JOIN (SELECT NULL::timestamptz AS last_message_at) c"


class CampaignWork(msgspec.Struct, frozen=True, kw_only=True):
    """A campaign the worker has something to do for."""

    campaign_id: int
    tenant: str
    status: str
    fanned_out: bool
    scheduled_at: datetime | None
    held: int
    # All its queued messages have an outcome (sent, failed or cancelled).
    settled: bool
    # An auto-winner test whose test portion is queued, and whose rest waits for the winner.
    awaiting_winner: bool = False


class PostgresCampaignReadModel:
    def __init__(
        self,
        pool: asyncpg.Pool,
        projections: PostgresProjectionStore,
        events: PostgresEventStore,
        *,
        catch_up_timeout: float = 2.0,
    ) -> None:
        self._pool = pool
        self._projections = projections
        self._events = events
        # Turns waiting for their lock each hold a connection: at most half the pool, so the
        # one whose turn it is always finds a connection for its work.
        self._turn_slots = asyncio.Semaphore(max(1, pool.get_max_size() // 2))
        self._catch_up_timeout = catch_up_timeout

    # -- the API's queries -------------------------------------------------------------------

    async def list_campaigns(
        self, tenant: str, limit: int, cursor: str | None, status: str | None
    ) -> CampaignPage:
        """Newest first."""
        before = decode_cursor(cursor, tuple[int])[0] if cursor else 2**63 - 1
        rows = await self._pool.fetch(
            _CAMPAIGN + "WHERE c.tenant_id = $1 AND c.campaign_id < $2"
            " AND ($3::text IS NULL OR c.status = $3)"
            " ORDER BY c.campaign_id DESC LIMIT $4",
            tenant,
            before,
            status,
            limit + 1,
        )
        items = await self._with_tests([_view(row) for row in rows[:limit]])
        next_cursor = encode_cursor(items[-1].campaign_id) if len(rows) > limit else None
        return CampaignPage(items, next_cursor)

    async def get_campaign(self, tenant: str, campaign_id: int) -> CampaignView | None:
        if campaign_id not in _BIGINT:
            return None
        row = await self._pool.fetchrow(
            _CAMPAIGN + "WHERE c.campaign_id = $1 AND c.tenant_id = $2", campaign_id, tenant
        )
        return (await self._with_tests([_view(row)]))[0] if row else None

    async def _with_tests(self, views: list[CampaignView]) -> list[CampaignView]:
        """The views, those of A/B tests with their results per variant."""
        tested = [v.campaign_id for v in views if v.ab_test is not None]
        if not tested:
            return views
        rows = await self._pool.fetch(
            "SELECT campaign_id, variant, to_rest, "
            + ", ".join(_COUNTS)
            + " FROM campaign_variant_metrics WHERE campaign_id = ANY($1::bigint[])",
            tested,
        )
        counts = {
            (r["campaign_id"], r["variant"], r["to_rest"]): VariantCounts(
                **{name: r[name] for name in _COUNTS}
            )
            for r in rows
        }
        out = []
        for view in views:
            test = view.ab_test
            if test is not None:
                variants = [
                    msgspec.structs.replace(
                        v,
                        test=counts.get((view.campaign_id, i, False), VariantCounts()),
                        rest=counts.get((view.campaign_id, i, True), VariantCounts()),
                    )
                    for i, v in enumerate(test.variants)
                ]
                view = msgspec.structs.replace(
                    view, ab_test=msgspec.structs.replace(test, variants=variants)
                )
            out.append(view)
        return out

    async def ab_test(self, campaign_id: int) -> AbTestView | None:
        """The campaign's test and its results per variant (the auto-winner's question)."""
        row = await self._pool.fetchrow(_CAMPAIGN + "WHERE c.campaign_id = $1", campaign_id)
        if row is None:
            return None
        return (await self._with_tests([_view(row)]))[0].ab_test

    # -- the audience (application.campaigns.Audience) ----------------------------------------

    @asynccontextmanager
    async def turn(self, campaign_id: int) -> AsyncIterator[None]:
        # Postgres grants an advisory lock to its waiters in the order they asked. Scoped to
        # a transaction that writes nothing: released by its end whatever happens to the task
        # (a cancelled one rolls back), and, holding no transaction id, it never holds back
        # the readers of the log.
        async with self._turn_slots, self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{TURN_TIMEOUT_SECONDS}s'")
            try:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"campaign-{campaign_id}",
                )
            except asyncpg.LockNotAvailableError:
                raise ConcurrencyError(
                    f"campaign {campaign_id} is busy: its turn did not come within"
                    f" {TURN_TIMEOUT_SECONDS} s"
                ) from None
            yield

    async def catch_up(self) -> None:
        head = await questions.head_position(self._pool)
        if head is None:
            return
        deadline = time.monotonic() + self._catch_up_timeout
        for view in ("fans", "conversations"):
            while not await self._projections.has_applied(view, head):
                if time.monotonic() >= deadline:
                    return  # the version checks of the fan-out still guard every write
                await asyncio.sleep(0.01)

    async def absent_fans(self, tenant: str, fan_ids: list[int]) -> set[int]:
        # An anti-join answers with the few absent ids, not the 100,000 present ones.
        absent = {fan_id for fan_id in fan_ids if fan_id not in _BIGINT}
        rows = await self._pool.fetch(
            "SELECT id FROM unnest($2::bigint[]) AS requested(id) WHERE NOT EXISTS"
            " (SELECT FROM fans f WHERE f.tenant_id = $1 AND f.fan_id = requested.id)",
            tenant,
            [fan_id for fan_id in fan_ids if fan_id in _BIGINT],
        )
        missing = {row["id"] for row in rows}
        # The view may not hold a fan created a moment ago: the log decides.
        live = await self._live_in_log(tenant, missing) if missing else {}
        return absent | (missing - live.keys())

    async def segment_size(self, tenant: str, segment: Segment) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM fans f"
                + _activity_join(segment.active_since)
                + " WHERE f.tenant_id = $1"
                + _SEGMENT
                + _at_risk(segment.at_risk),
                tenant,
                list(segment.tags),
                segment.min_value_cents,
                segment.active_since,
            )
        )

    async def highest_fan_id(self, tenant: str) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT coalesce(max(fan_id), 0) FROM fans WHERE tenant_id = $1", tenant
            )
        )

    async def chunk(self, campaign: Campaign, after: int, limit: int) -> AudienceChunk:
        if campaign.recipient_ids is not None:
            return await self._explicit_chunk(campaign, after, limit)
        rows = await self._pool.fetch(
            _RECIPIENT
            + _activity_join(campaign.segment_active_since)
            + " WHERE f.tenant_id = $1 AND f.fan_id > $5 AND f.fan_id <= $6"
            + _SEGMENT
            + _at_risk(campaign.segment_at_risk)
            + " ORDER BY f.fan_id LIMIT $7",
            campaign.tenant,
            list(campaign.segment_tags),
            campaign.segment_min_value_cents,
            campaign.segment_active_since,
            after,
            campaign.audience_max_fan_id,
            limit,
        )
        recipients = [Recipient(**dict(row)) for row in rows]
        return AudienceChunk(
            recipients=recipients,
            cursor=recipients[-1].fan_id if recipients else after,
            skipped=0,
            last=len(recipients) < limit,
        )

    async def _explicit_chunk(self, campaign: Campaign, after: int, limit: int) -> AudienceChunk:
        ids = campaign.recipient_ids
        assert ids is not None
        start = bisect.bisect_right(ids, after)
        wanted = list(ids[start : start + limit])
        rows = await self._pool.fetch(
            _RECIPIENT + "WHERE f.tenant_id = $1 AND f.fan_id = ANY($2::bigint[])"
            " ORDER BY f.fan_id",
            campaign.tenant,
            wanted,
        )
        recipients = [Recipient(**dict(row)) for row in rows]
        missing = set(wanted) - {recipient.fan_id for recipient in recipients}
        if missing:
            # Not in the view (yet, or any more): a fan live in the log is queued all the same.
            live = await self._live_in_log(campaign.tenant, missing)
            recipients = sorted(
                [*recipients, *(_recipient(fan) for fan in live.values())],
                key=lambda recipient: recipient.fan_id,
            )
        return AudienceChunk(
            recipients=recipients,
            cursor=wanted[-1] if wanted else after,
            # Deleted since launch: left out, counted.
            skipped=len(wanted) - len(recipients),
            last=start + limit >= len(ids),
        )

    async def _live_in_log(self, tenant: str, fan_ids: set[int]) -> dict[int, Fan]:
        """Those of ``fan_ids`` that the event store has as live fans of ``tenant``."""
        streams = await self._events.load_streams(
            [fan_stream_id(fan_id) for fan_id in sorted(fan_ids) if fan_id in _BIGINT]
        )
        live = {}
        for recorded in streams.values():
            if recorded[0].metadata.tenant != tenant:
                continue
            fan: Any = None
            for item in recorded:
                fan = item.event.mutate(fan)
            if isinstance(fan, Fan) and not fan.deleted:
                live[fan.fan_id] = fan
        return live

    # -- the campaign worker's board and the sender's gate -------------------------------------

    async def open_campaigns(self) -> list[CampaignWork]:
        rows = await self._pool.fetch(
            """
            SELECT c.campaign_id, c.tenant_id AS tenant, c.status,
                   c.fanned_out_at IS NOT NULL AS fanned_out, c.scheduled_at,
                   coalesce(m.held, 0) AS held,
                   coalesce(m.queued, 0) >= c.queued
                   AND coalesce(m.sent + m.failed + m.cancelled, 0) >= coalesce(m.queued, 0)
                   AS settled,
                   c.awaiting_winner
            FROM campaigns c LEFT JOIN campaign_metrics m USING (campaign_id)
            WHERE c.status IN ('active', 'paused')
               OR c.campaign_id IN (SELECT campaign_id FROM campaign_metrics WHERE held > 0)
            ORDER BY c.campaign_id
            """
        )
        return [CampaignWork(**dict(row)) for row in rows]

    async def held_messages(self, campaign_id: int, limit: int) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT message_id::text FROM campaign_messages"
            " WHERE campaign_id = $1 AND bucket = 'held' LIMIT $2",
            campaign_id,
            limit,
        )
        return [row["message_id"] for row in rows]


def _recipient(fan: Fan) -> Recipient:
    return Recipient(
        fan_id=fan.fan_id,
        version=fan.version,
        platform=fan.platform,
        conversation_id=fan.conversation_id,
        name=fan.name,
        handle=fan.handle,
    )


def _view(row: Any) -> CampaignView:
    data = dict(row)
    metrics = CampaignMetrics(**{name: data.pop(name) or 0 for name in _METRICS})
    test = {name: data.pop(name) for name in _TEST_COLUMNS}
    return CampaignView(**data, metrics=metrics, ab_test=_test_view(test))


def _test_view(test: dict[str, Any]) -> AbTestView | None:
    """The test as the campaigns view has it; its results are added from another view."""
    rule = test["ab_test"]
    if rule is None or not test["variants"]:
        return None
    return AbTestView(
        rule=AbTest(
            goal=rule["goal"],
            auto_winner=rule["autoWinner"],
            holdout_percent=rule["holdout"],
            min_per_variant=rule["minPerVariant"],
            threshold=rule["threshold"],
        ),
        variants=[
            VariantView(
                name=v["name"],
                weight=v["weight"],
                content=v["content"],
                price_cents=v["priceCents"],
                media_urls=v["mediaUrls"],
                test=VariantCounts(),
                rest=VariantCounts(),
            )
            for v in test["variants"]
        ],
        awaiting_winner=test["awaiting_winner"],
        recorded_winner=test["winner"],
        decided_at=test["decided_at"],
    )
