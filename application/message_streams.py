"""Where a message's stream is: in its tenant's namespace (``message-<tenant>:<uuid>`` for
outgoing messages and for inbound ones recorded before they had a prefix of their own,
``inbound-<tenant>:<uuid>`` for inbound ones since), or, for messages recorded before ids were
scoped by tenant, in the one namespace every tenant shared (``message-<uuid>``).

The audit hash chain covers stream ids, so those old streams are never moved or copied: they
are read where they are and their later events appended there (an aggregate appends to the
stream it was loaded from). This module is the one place that knows both places.
"""

from __future__ import annotations

from typing import Any

from application.errors import NotFound
from application.ports import EventStore, RecordedEvent
from domain.errors import InvalidValue
from domain.inbound import inbound_stream_id
from domain.message import canonical_message_id, legacy_message_stream_id, message_stream_id


async def recorded_message(
    store: EventStore, message_id: str, *, tenant: str
) -> list[RecordedEvent]:
    """The history of ``tenant``'s message ``message_id`` (outgoing or inbound); empty if it
    has none. A legacy stream counts only if it is this tenant's."""
    recorded = await store.load(message_stream_id(tenant, message_id))
    if recorded:
        return recorded
    recorded = await store.load(inbound_stream_id(tenant, message_id))
    if recorded:
        return recorded
    return await legacy_message(store, message_id, tenant=tenant)


async def legacy_message(store: EventStore, message_id: str, *, tenant: str) -> list[RecordedEvent]:
    """The tenant's message recorded under the unscoped stream id, if any."""
    recorded = await store.load(legacy_message_stream_id(message_id))
    if recorded and recorded[0].metadata.tenant == tenant:
        return recorded
    return []


async def load_message(store: EventStore, message_id: str, *, tenant: str) -> tuple[Any, int]:
    """Replay ``tenant``'s message; NotFound if it has none (another tenant's is missing too,
    and so is a text that is not a message id at all)."""
    try:
        message_id = canonical_message_id(message_id)
    except InvalidValue:
        raise NotFound(f"message {message_id}") from None
    recorded = await recorded_message(store, message_id, tenant=tenant)
    if not recorded:
        raise NotFound(message_stream_id(tenant, message_id))
    aggregate: Any = None
    for item in recorded:
        aggregate = item.event.mutate(aggregate)
    return aggregate, recorded[-1].position
