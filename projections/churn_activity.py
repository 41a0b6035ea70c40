"""Per fan and UTC day, what the churn model's features sum (application/churn.py).

A feature as of day D aggregates the days before D: an event dated D or later can only write
a row of its own day or later, so it can never change a feature as of D (the property
tests/unit/test_churn_no_leakage.py checks). The one exception is by design: an imported
transaction (Fan.TransactionImported) is dated when it happened, so importing history fills
past days, which is what an import is for.

Days are the events' own times: a purchase at its ``paid_at`` (an imported transaction's own
time), a fan's message when received, the account's when queued (one-to-one, or a campaign's),
a read when read. A reply's latency needs the previous message of the other side, kept on the
fan's row in log order and counted on the day of the reply. A fan's subscription day is the
one it was created with: a later edit would rewrite what was known before it.

Erasure: Fan.Erased deletes every row of the fan here and its score (churn_scores), so
nothing of an erased fan stays; the model itself holds no fan's data. Activity of a fan this
projector has no row for (erased, or never created) is not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from application.ports import RecordedEvent, Sql
from domain.fan import Fan
from domain.inbound import InboundMessage
from domain.message import Message, message_id_of
from projections.analytics_common import AppliesOneAsBatch, paid_at, utc_day
from projections.base import TableRows

_HANDLED = frozenset(
    {
        Fan.Created,
        Fan.Deleted,
        Fan.Erased,
        Fan.PurchaseRecorded,
        Fan.TransactionImported,
        InboundMessage.Received,
        Message.Queued,
        Message.Read,
    }
)
_FAN_COLUMNS = (
    "tenant_id",
    "fan_id",
    "first_seen_at",
    "subscribed_at",
    "deleted_at",
    "fan_waiting_since",
    "account_waiting_since",
)
_SUMS = (
    "purchases",
    "spend_cents",
    "fan_messages",
    "account_messages",
    "campaign_messages",
    "reads",
    "fan_replies",
    "fan_reply_seconds",
    "answers",
    "answer_seconds",
)
_LATEST = ("last_purchase_at", "last_fan_message_at", "last_account_message_at")
_UPSERT_DAYS = f"""
INSERT INTO churn_fan_days (tenant_id, fan_id, day, {", ".join(_SUMS + _LATEST)})
SELECT tenant_id, fan_id, day, {", ".join(_SUMS + _LATEST)}
FROM json_populate_recordset(NULL::churn_fan_days, $1::json)
ON CONFLICT (tenant_id, fan_id, day) DO UPDATE SET
{", ".join(f"{c} = churn_fan_days.{c} + EXCLUDED.{c}" for c in _SUMS)},
{", ".join(f"{c} = greatest(churn_fan_days.{c}, EXCLUDED.{c})" for c in _LATEST)}
"""


class ChurnActivityProjection(AppliesOneAsBatch):
    name = "churn_activity"
    tables = ("churn_fans", "churn_fan_days", "churn_messages")

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        events = [r for r in batch if type(r.event) in _HANDLED]
        if not events:
            return
        fans = TableRows("churn_fans", ("tenant_id", "fan_id"), ("text", "bigint"), _FAN_COLUMNS)
        messages = TableRows(
            "churn_messages",
            ("message_id", "tenant_id"),
            ("uuid", "text"),
            ("message_id", "tenant_id", "fan_id"),
        )
        await messages.load(sql, {_message_key(r) for r in events if type(r.event) is Message.Read})
        await fans.load(sql, {_fan_key(r, messages) for r in events} - {None})
        days: dict[tuple[str, int, Any], dict[str, Any]] = {}
        erased: set[tuple[str, int]] = set()
        deleted: set[tuple[str, int]] = set()
        for recorded in events:
            key = _fan_key(recorded, messages)
            event = recorded.event
            if type(event) is Fan.Created:
                if fans.get(key) is None and key not in erased:
                    fans.put(key, _new_fan(event))
                continue
            fan = fans.get(key)
            if fan is None or key is None:
                continue  # erased, or never created: nothing kept
            if type(event) is Fan.Erased:
                fans.remove(key)
                erased.add(key)
            elif type(event) is Fan.Deleted:
                fan["deleted_at"] = event.timestamp
                deleted.add(key)
            elif type(event) in (Fan.PurchaseRecorded, Fan.TransactionImported):
                at = paid_at(event)
                day = _day(days, key, at)
                day["purchases"] += 1
                day["spend_cents"] += event.amount_cents
                _latest(day, "last_purchase_at", at)
            elif type(event) is InboundMessage.Received:
                _fan_wrote(fan, _day(days, key, event.timestamp), event.timestamp)
            elif type(event) is Message.Queued:
                messages.put(_message_key(recorded), {"fan_id": event.fan_id})
                day = _day(days, key, event.timestamp)
                _account_wrote(fan, day, event.timestamp, campaign=event.campaign_id is not None)
            elif type(event) is Message.Read:
                _day(days, key, event.timestamp)["reads"] += 1
        await fans.flush(sql)
        await messages.flush(sql)
        rows = [row for (tenant, fan_id, _), row in days.items() if (tenant, fan_id) not in erased]
        if rows:
            await sql.execute(_UPSERT_DAYS, rows)
        if erased:
            await _forget(sql, erased, ("churn_fan_days", "churn_messages", "churn_scores"))
        if deleted - erased:
            # A deleted fan is no one's to win back: its score goes (its days stay, as the
            # history of a fan who was there), so the riskiest-first page reads scores alone.
            await _forget(sql, deleted - erased, ("churn_scores",))


async def _forget(sql: Sql, fans: set[tuple[str, int]], tables: tuple[str, ...]) -> None:
    tenants, fan_ids = [t for t, _ in fans], [f for _, f in fans]
    for table in tables:
        await sql.execute(
            f"DELETE FROM {table} t USING unnest($1::text[], $2::bigint[]) AS e(tenant, fan)"
            " WHERE t.tenant_id = e.tenant AND t.fan_id = e.fan",
            tenants,
            fan_ids,
        )


def _new_fan(event: Fan.Created) -> dict[str, Any]:
    return {
        "first_seen_at": event.timestamp,
        "subscribed_at": event.subscribed_at,
        "deleted_at": None,
        "fan_waiting_since": None,
        "account_waiting_since": None,
    }


def _fan_wrote(fan: dict[str, Any], day: dict[str, Any], at: datetime) -> None:
    day["fan_messages"] += 1
    _latest(day, "last_fan_message_at", at)
    if fan["account_waiting_since"] is not None:
        day["fan_replies"] += 1
        day["fan_reply_seconds"] += _seconds(fan["account_waiting_since"], at)
        fan["account_waiting_since"] = None
    if fan["fan_waiting_since"] is None:
        fan["fan_waiting_since"] = at


def _account_wrote(
    fan: dict[str, Any], day: dict[str, Any], at: datetime, *, campaign: bool
) -> None:
    if campaign:
        # A campaign's message answers no one (as in analytics_members), but may be answered.
        day["campaign_messages"] += 1
    else:
        day["account_messages"] += 1
        _latest(day, "last_account_message_at", at)
        if fan["fan_waiting_since"] is not None:
            day["answers"] += 1
            day["answer_seconds"] += _seconds(fan["fan_waiting_since"], at)
            fan["fan_waiting_since"] = None
    if fan["account_waiting_since"] is None:
        fan["account_waiting_since"] = at


def _seconds(since: datetime, at: datetime) -> int:
    return max(round((at - since).total_seconds()), 0)


def _day(
    days: dict[tuple[str, int, Any], dict[str, Any]], key: tuple[str, int], at: datetime
) -> dict[str, Any]:
    day = utc_day(at)
    row = days.get((*key, day))
    if row is None:
        row = {"tenant_id": key[0], "fan_id": key[1], "day": day}
        row |= dict.fromkeys(_SUMS, 0) | dict.fromkeys(_LATEST)
        days[(*key, day)] = row
    return row


def _latest(row: dict[str, Any], column: str, at: datetime) -> None:
    if row[column] is None or at > row[column]:
        row[column] = at


def _message_key(recorded: RecordedEvent) -> tuple[str, str]:
    return message_id_of(recorded.stream_id), recorded.metadata.tenant


def _fan_key(recorded: RecordedEvent, messages: TableRows) -> tuple[str, int] | None:
    """(tenant, fan id) of the fan an event concerns; None for a read of an unknown message."""
    event, tenant = recorded.event, recorded.metadata.tenant
    if type(event) is Message.Read:
        message = messages.get(_message_key(recorded))
        return None if message is None else (tenant, message["fan_id"])
    if type(event) in (InboundMessage.Received, Message.Queued):
        return tenant, event.fan_id
    return tenant, int(recorded.stream_id.removeprefix("fan-"))
