"""Reading the history rather than the present: the global log for auditors, and a stream's
state as it was at a past version or time (time travel).

Who may read what is decided here, once: a key reads its own user's tenant, an auditor also
the tenants it was granted, an admin every tenant. Another tenant's stream is reported missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import msgspec

from application.errors import Forbidden, NotFound
from application.permissions import Permission
from application.ports import EventStore, RecordedEvent
from domain.errors import InvalidValue

ALL_TENANTS = "*"
MAX_PAGE = 500


class AuditScope(msgspec.Struct, frozen=True):
    """The tenants a caller may read; ``None`` means every tenant."""

    tenants: frozenset[str] | None

    def allows(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def narrowed_to(self, tenant: str | None) -> AuditScope:
        """The scope of a query filtered on ``tenant``; asking for a tenant one may not read
        is refused rather than answered with an empty page."""
        if tenant is None:
            return self
        if not self.allows(tenant):
            raise Forbidden(f"this key may not read tenant {tenant!r}")
        return AuditScope(frozenset({tenant}))


def scope_for(
    permissions: frozenset[Permission], user_id: str, grants: frozenset[str]
) -> AuditScope:
    """A key reads its own user's tenant, plus the tenants it was granted ('*': all); a key
    that operates the whole system reads every tenant."""
    if Permission.AUDIT not in permissions:
        raise Forbidden("this key may not read the audit log")
    if Permission.AUDIT_GRANTED not in permissions:
        grants = frozenset()
    if Permission.OPERATE in permissions or ALL_TENANTS in grants:
        return AuditScope(None)
    return AuditScope(grants | {user_id})


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str | None = None
    stream_type: str | None = None
    event_type: str | None = None
    tenant: str | None = None
    actor: str | None = None
    # recorded_at >= since and < until
    since: datetime | None = None
    until: datetime | None = None


class AuditEventsQuery(msgspec.Struct, frozen=True, kw_only=True):
    scope: AuditScope
    filter: AuditFilter = AuditFilter()
    limit: int = 50
    cursor: str | None = None


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[RecordedEvent]
    next_cursor: str | None


class AuditLog(Protocol):
    async def events(self, query: AuditEventsQuery) -> AuditPage:
        """Events in commit order after the cursor, within the scope and filter."""
        ...


def events_query(
    scope: AuditScope, audit_filter: AuditFilter, *, limit: int, cursor: str | None
) -> AuditEventsQuery:
    """Validate a request for the global log and bind it to the caller's scope."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidValue("limit", f"must be between 1 and {MAX_PAGE}")
    for name in ("since", "until"):
        value = getattr(audit_filter, name)
        if value is not None and value.tzinfo is None:
            raise InvalidValue(name, "must carry a time zone (e.g. 2026-01-31T12:00:00Z)")
    return AuditEventsQuery(
        scope=scope.narrowed_to(audit_filter.tenant),
        filter=audit_filter,
        limit=limit,
        cursor=cursor,
    )


class StreamAsOf(msgspec.Struct, frozen=True, kw_only=True):
    """A stream's history up to a point, and the aggregate replayed from it (None if the
    stream did not exist yet at that point)."""

    stream_id: str
    tenant: str
    events: list[RecordedEvent]
    state: Any


async def stream_as_of(
    store: EventStore,
    stream_id: str,
    scope: AuditScope,
    *,
    up_to_version: int | None = None,
    as_of: datetime | None = None,
) -> StreamAsOf:
    if up_to_version is not None and up_to_version < 0:
        raise InvalidValue("version", "must not be negative")
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidValue("as_of", "must carry a time zone (e.g. 2026-01-31T12:00:00Z)")
    recorded = await store.load(stream_id, up_to_version=up_to_version, as_of=as_of)
    first = recorded[:1] or await store.load(stream_id, up_to_version=1)
    if not first or not scope.allows(first[0].metadata.tenant):
        raise NotFound(stream_id)
    state: Any = None
    for item in recorded:
        state = item.event.mutate(state)
    return StreamAsOf(
        stream_id=stream_id, tenant=first[0].metadata.tenant, events=recorded, state=state
    )
