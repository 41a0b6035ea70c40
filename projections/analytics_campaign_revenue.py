"""Campaign revenue per day (UTC): messages a campaign queued each day, and the purchases of
its messages (MessagePurchased) each day, credited to the campaign of the bought message."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.message import Message, message_id_of
from projections.analytics_common import AppliesOneAsBatch, utc_day


class CampaignRevenueProjection(AppliesOneAsBatch):
    name = "analytics_campaign_revenue"
    tables = ("analytics_campaign_messages", "analytics_campaign_revenue_daily")

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        queued: list[tuple[str, str, int, object]] = []
        bought: list[tuple[str, str, int, object]] = []
        for recorded in batch:
            event = recorded.event
            if isinstance(event, Message.Queued) and event.campaign_id is not None:
                message_id = message_id_of(recorded.stream_id)
                queued.append(
                    (message_id, event.tenant, event.campaign_id, utc_day(event.timestamp))
                )
            elif isinstance(event, Message.Purchased):
                message_id = message_id_of(recorded.stream_id)
                tenant = recorded.metadata.tenant
                bought.append((message_id, tenant, event.amount_cents, utc_day(event.timestamp)))
        if queued:
            await sql.execute(
                """
                WITH new AS (
                    INSERT INTO analytics_campaign_messages (message_id, tenant_id, campaign_id)
                    SELECT m, t, c FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS u(m, t, c)
                    ON CONFLICT (message_id, tenant_id) DO NOTHING
                    RETURNING message_id, tenant_id
                )
                INSERT INTO analytics_campaign_revenue_daily AS r
                    (tenant_id, campaign_id, day, messages_queued)
                SELECT u.t, u.c, u.d, count(*)
                FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::date[]) AS u(m, t, c, d)
                JOIN new ON new.message_id = u.m AND new.tenant_id = u.t
                GROUP BY u.t, u.c, u.d
                ON CONFLICT (tenant_id, campaign_id, day) DO UPDATE
                SET messages_queued = r.messages_queued + EXCLUDED.messages_queued
                """,
                *zip(*queued, strict=True),
            )
        if bought:
            # After the inserts above: a message bought in the batch that queued it is known.
            await sql.execute(
                """
                INSERT INTO analytics_campaign_revenue_daily AS r
                    (tenant_id, campaign_id, day, revenue_cents, purchases)
                SELECT m.tenant_id, m.campaign_id, u.d, sum(u.a), count(*)
                FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::date[]) AS u(m, t, a, d)
                JOIN analytics_campaign_messages m ON m.message_id = u.m AND m.tenant_id = u.t
                GROUP BY m.tenant_id, m.campaign_id, u.d
                ON CONFLICT (tenant_id, campaign_id, day) DO UPDATE
                SET revenue_cents = r.revenue_cents + EXCLUDED.revenue_cents,
                    purchases = r.purchases + EXCLUDED.purchases
                """,
                *zip(*bought, strict=True),
            )
