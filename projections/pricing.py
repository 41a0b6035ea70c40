"""Offers and purchases per grid price, per account and per fan: the pricing bandit's evidence
(application/pricing.py).

An offer is a priced message the platform took (``Message.Sent``), not one merely queued: a
message that failed or was cancelled never reached the fan, and counting it would read as a
refusal to buy. A purchase is its first ``Message.Purchased``. A price off the grid counts for
its nearest grid point when close enough (``snap``), so the history of an account's usual
price informs the neighbouring grid price from the first day; far from any, it is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from application.ports import RecordedEvent, Sql
from application.pricing import snap
from domain.message import Message, message_id_of
from projections.analytics_common import AppliesOneAsBatch
from projections.base import TableRows

_HANDLED = frozenset({Message.Queued, Message.Sent, Message.Purchased})
_OFFER_COLUMNS = ("message_id", "tenant_id", "fan_id", "price_cents", "sent", "purchased")


class PricingProjection(AppliesOneAsBatch):
    name = "pricing"
    tables = ("pricing_offers", "pricing_account_counts", "pricing_fan_counts")

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        events = [r for r in batch if type(r.event) in _HANDLED]
        # Free messages and prices off the grid are never offers: no row to look up.
        events = [
            r
            for r in events
            if type(r.event) is not Message.Queued or snap(r.event.price_cents) is not None
        ]
        if not events:
            return
        offers = TableRows(
            "pricing_offers", ("message_id", "tenant_id"), ("uuid", "text"), _OFFER_COLUMNS
        )
        accounts = TableRows(
            "pricing_account_counts",
            ("tenant_id", "price_cents"),
            ("text", "integer"),
            ("tenant_id", "price_cents", "offers", "purchases"),
        )
        fans = TableRows(
            "pricing_fan_counts",
            ("tenant_id", "fan_id", "price_cents"),
            ("text", "bigint", "integer"),
            ("tenant_id", "fan_id", "price_cents", "offers", "purchases"),
        )
        queued = {_key(r) for r in events if type(r.event) is Message.Queued}
        await offers.load(sql, {_key(r) for r in events} - queued)
        for recorded in events:
            if type(recorded.event) is Message.Queued and offers.get(_key(recorded)) is None:
                price = snap(recorded.event.price_cents)
                offers.put(
                    _key(recorded),
                    {"fan_id": recorded.event.fan_id, "price_cents": price}
                    | dict.fromkeys(("sent", "purchased"), False),
                )
        touched = list(offers.present())
        await accounts.load(sql, {(r["tenant_id"], r["price_cents"]) for r in touched})
        await fans.load(sql, {(r["tenant_id"], r["fan_id"], r["price_cents"]) for r in touched})
        for recorded in events:
            offer = offers.get(_key(recorded))
            if offer is None:
                continue
            if type(recorded.event) is Message.Sent and not offer["sent"]:
                offer["sent"] = True
                _count(accounts, fans, offer, "offers")
            elif type(recorded.event) is Message.Purchased and not offer["purchased"]:
                offer["purchased"] = True
                _count(accounts, fans, offer, "purchases")
        await offers.flush(sql)
        await accounts.flush(sql)
        await fans.flush(sql)


def _count(accounts: TableRows, fans: TableRows, offer: dict[str, Any], column: str) -> None:
    tenant, price = offer["tenant_id"], offer["price_cents"]
    for rows, key in ((accounts, (tenant, price)), (fans, (tenant, offer["fan_id"], price))):
        row = rows.get(key)
        if row is None:
            row = {"offers": 0, "purchases": 0}
            rows.put(key, row)
        row[column] += 1


def _key(recorded: RecordedEvent) -> tuple[str, str]:
    return message_id_of(recorded.stream_id), recorded.metadata.tenant
