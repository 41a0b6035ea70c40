"""One recorded event as one Parquet row: ids, types, amounts, dates and metadata in columns,
the event's other fields as JSON, and never a personal field or a fan id in clear.

Personal fields are the ones ``domain.events.PERSONAL_DATA`` declares; they are dropped, not
masked, so an erased fan's past rows hold nothing of theirs beyond the pseudonym. Fan ids,
wherever an event names one, become the tenant's keyed pseudonym (adapters/export/pseudonyms.py).
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

import msgspec
import pyarrow as pa

from adapters.export.pseudonyms import FanPseudonyms
from adapters.postgres.event_store.mapper import event_fields
from application.ports import RecordedEvent
from domain.events import PERSONAL_DATA

# Fields lifted into their own columns, when an event carries them.
_ID_COLUMNS = ("campaign_id", "conversation_id", "message_id", "status")
_AMOUNT_COLUMNS = ("amount_cents", "price_cents")
# A fan's id inside another stream's id: the enrolment streams (domain/enrolment.py).
_ENROLMENT = re.compile(r"^(enrolment-\d+-)(\d+)(-\d+)$")
# The largest fan id of an audience is a bound on ids, not a fan; it would still name one.
# What messages say is left out wherever it appears (a campaign's text, its variants', a
# saved reply's): it is declared personal only once addressed to a fan, but it is the same text.
# A fan's tags are a creator's free text about the fan: left out too, as from the fans table.
_DROPPED = frozenset({"audience_max_fan_id", "content", "attachments", "tags"})

SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("transaction_id", pa.int64()),
        ("event_id", pa.string()),
        ("stream_type", pa.string()),
        ("stream_id", pa.string()),
        ("version", pa.int64()),
        ("event_type", pa.string()),
        ("tenant", pa.string()),
        ("actor", pa.string()),
        ("correlation_id", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("fan", pa.string()),
        ("amount_cents", pa.int64()),
        ("price_cents", pa.int64()),
        ("campaign_id", pa.string()),
        ("conversation_id", pa.string()),
        ("message_id", pa.string()),
        ("status", pa.string()),
        ("data", pa.string()),
    ]
)


def event_row(recorded: RecordedEvent, pseudonyms: FanPseudonyms) -> dict[str, Any]:
    tenant = recorded.metadata.tenant
    fields = event_fields(recorded.event)
    for name in PERSONAL_DATA.get(recorded.event_type, _NONE).fields:
        fields.pop(name, None)
    fan_id = fields.pop("fan_id", None)
    if fan_id is None and recorded.stream_type == "fan":
        fan_id = int(recorded.stream_id.removeprefix("fan-"))
    data = _pseudonymised(fields, tenant, pseudonyms)
    row: dict[str, Any] = {
        "position": recorded.position,
        "transaction_id": recorded.transaction_id,
        "event_id": str(recorded.event_id),
        "stream_type": recorded.stream_type,
        "stream_id": _stream_id(recorded, pseudonyms),
        "version": recorded.version,
        "event_type": recorded.event_type,
        "tenant": tenant,
        "actor": recorded.metadata.actor,
        "correlation_id": recorded.metadata.correlation_id,
        "recorded_at": recorded.recorded_at.astimezone(UTC),
        "fan": pseudonyms.of(tenant, int(fan_id)) if fan_id is not None else None,
    }
    for name in _AMOUNT_COLUMNS:
        value = data.get(name)
        row[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
    for name in _ID_COLUMNS:
        value = data.get(name)
        row[name] = None if value is None or isinstance(value, dict | list) else str(value)
    row["data"] = msgspec.json.encode(data).decode()
    return row


def _stream_id(recorded: RecordedEvent, pseudonyms: FanPseudonyms) -> str:
    tenant = recorded.metadata.tenant
    if recorded.stream_type == "fan":
        return "fan-" + pseudonyms.of(tenant, int(recorded.stream_id.removeprefix("fan-")))
    found = _ENROLMENT.match(recorded.stream_id)
    if found:
        return found[1] + pseudonyms.of(tenant, int(found[2])) + found[3]
    return recorded.stream_id


def _pseudonymised(
    fields: dict[str, Any], tenant: str, pseudonyms: FanPseudonyms
) -> dict[str, Any]:
    """Every fan id a field holds, at any depth, as its pseudonym."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in _DROPPED:
            continue
        if name == "fan_id" and value is not None:
            out[name] = pseudonyms.of(tenant, int(value))
        elif name == "fan_ids":
            out[name] = [pseudonyms.of(tenant, int(fan)) for fan in value]
        elif name == "skipped_fans":
            out[name] = [[pseudonyms.of(tenant, int(fan)), reason] for fan, reason in value]
        elif isinstance(value, dict):
            out[name] = _pseudonymised(value, tenant, pseudonyms)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[name] = [_pseudonymised(v, tenant, pseudonyms) for v in value]
        else:
            out[name] = value
    return out


class _NoPersonalData:
    fields: tuple[str, ...] = ()


_NONE = _NoPersonalData()
