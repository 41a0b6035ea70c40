"""`crm export tables`: read models as Parquet, one file per table, replaced on every run.

Only columns that are not personal: no name, handle, email, notes or platform id of a fan, no
message text or attachments, no tags (free text a creator writes about a fan), no failure
reasons (a platform's words, which may quote a message). Fan ids become the pseudonyms the
event export uses, so the tables join its ``fan`` column."""

from __future__ import annotations

from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from adapters.export.destinations import Destination
from adapters.export.pseudonyms import FanPseudonyms

_TS = pa.timestamp("us", tz="UTC")
_COUNTS = ("queued", "sent", "delivered", "failed", "held", "cancelled", "opened", "clicked")

# name: (query, schema); a ``fan_id`` column is read and written as ``fan``, its pseudonym.
TABLES: dict[str, tuple[str, pa.Schema]] = {
    "fans": (
        "SELECT fan_id, tenant_id, platform, value_cents, conversation_id::text,"
        " subscribed_at, created_at, updated_at FROM fans ORDER BY fan_id",
        pa.schema(
            [
                ("fan", pa.string()),
                ("tenant_id", pa.string()),
                ("platform", pa.string()),
                ("value_cents", pa.int64()),
                ("conversation_id", pa.string()),
                ("subscribed_at", pa.date32()),
                ("created_at", _TS),
                ("updated_at", _TS),
            ]
        ),
    ),
    "messages": (
        "SELECT message_id::text, tenant_id, conversation_id::text, fan_id, direction,"
        " platform, price_cents, revenue_cents, priority, status, campaign_id::text, attempts,"
        " queued_at, sent_at, read_at, purchased_at, failed_at FROM messages"
        " ORDER BY queued_at, message_id",
        pa.schema(
            [
                ("message_id", pa.string()),
                ("tenant_id", pa.string()),
                ("conversation_id", pa.string()),
                ("fan", pa.string()),
                ("direction", pa.string()),
                ("platform", pa.string()),
                ("price_cents", pa.int64()),
                ("revenue_cents", pa.int64()),
                ("priority", pa.int64()),
                ("status", pa.string()),
                ("campaign_id", pa.string()),
                ("attempts", pa.int64()),
                ("queued_at", _TS),
                ("sent_at", _TS),
                ("read_at", _TS),
                ("purchased_at", _TS),
                ("failed_at", _TS),
            ]
        ),
    ),
    "campaign_metrics": (
        "SELECT m.campaign_id::text, m.tenant_id, c.kind, c.status, c.price_cents,"
        " c.total_recipients, m.queued, m.sent, m.delivered, m.failed, m.held, m.cancelled,"
        " m.opened, m.clicked, m.revenue_cents, c.created_at, c.launched_at, c.finished_at"
        " FROM campaign_metrics m LEFT JOIN campaigns c USING (campaign_id)"
        " ORDER BY m.campaign_id",
        pa.schema(
            [
                ("campaign_id", pa.string()),
                ("tenant_id", pa.string()),
                ("kind", pa.string()),
                ("status", pa.string()),
                ("price_cents", pa.int64()),
                ("total_recipients", pa.int64()),
                *((name, pa.int64()) for name in _COUNTS),
                ("revenue_cents", pa.int64()),
                ("created_at", _TS),
                ("launched_at", _TS),
                ("finished_at", _TS),
            ]
        ),
    ),
    "revenue_daily": (
        "SELECT day, tenant_id, fan_id, revenue_cents, purchases"
        " FROM analytics_fan_revenue_daily ORDER BY day, tenant_id, fan_id",
        pa.schema(
            [
                ("day", pa.date32()),
                ("tenant_id", pa.string()),
                ("fan", pa.string()),
                ("revenue_cents", pa.int64()),
                ("purchases", pa.int64()),
            ]
        ),
    ),
    "campaign_revenue_daily": (
        "SELECT day, tenant_id, campaign_id::text, messages_queued, revenue_cents, purchases"
        " FROM analytics_campaign_revenue_daily ORDER BY day, tenant_id, campaign_id",
        pa.schema(
            [
                ("day", pa.date32()),
                ("tenant_id", pa.string()),
                ("campaign_id", pa.string()),
                ("messages_queued", pa.int64()),
                ("revenue_cents", pa.int64()),
                ("purchases", pa.int64()),
            ]
        ),
    ),
}


async def export_tables(
    pool: asyncpg.Pool,
    pseudonyms: FanPseudonyms,
    destination: Destination,
    compression: str = "zstd",
) -> dict[str, int]:
    """Each table read in one snapshot, so the files agree with one another."""
    written: dict[str, int] = {}
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        for name, (query, schema) in TABLES.items():
            rows = [_row(record, pseudonyms) for record in await connection.fetch(query)]
            sink = pa.BufferOutputStream()
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, sink, compression=compression)
            await destination.write(f"{name}.parquet", sink.getvalue().to_pybytes())
            written[name] = len(rows)
    return written


def _row(record: asyncpg.Record, pseudonyms: FanPseudonyms) -> dict[str, Any]:
    row = dict(record)
    fan_id = row.pop("fan_id", None)
    if fan_id is not None:
        row["fan"] = pseudonyms.of(row["tenant_id"], fan_id)
    return row
