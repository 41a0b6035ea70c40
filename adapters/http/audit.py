"""/api/audit: the global log, a stream's history and past state, and the chain's head."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from adapters.bootstrap import Container
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.http.schemas import NO_NUL
from adapters.postgres.api_keys import Principal, granted_tenants
from adapters.postgres.event_chain_store import PostgresEventChain
from adapters.postgres.event_store.mapper import event_fields
from application.audit import (
    MAX_PAGE,
    AuditFilter,
    AuditScope,
    events_query,
    scope_for,
    stream_as_of,
)
from application.permissions import Permission
from application.ports import EventMetadata, RecordedEvent

Deps = NamedDependency[Container]


def _query(name: str, description: str) -> Any:
    # NUL is refused in every query parameter (adapters/http/boundary.py).
    return QueryParameter(name=name, description=description, schema_extra={"pattern": NO_NUL})


class MetadataOut(msgspec.Struct, kw_only=True, rename="camel"):
    tenant: str
    actor: str
    correlation_id: str
    causation_id: str
    trace_id: str | None
    schema_version: int

    @classmethod
    def of(cls, metadata: EventMetadata) -> MetadataOut:
        return cls(**msgspec.structs.asdict(metadata))


class AuditEventOut(msgspec.Struct, kw_only=True, rename="camel"):
    position: int
    transaction_id: int
    event_id: UUID
    stream_id: str
    stream_type: str
    version: int
    event_type: str
    recorded_at: datetime
    data: dict[str, Any]
    metadata: MetadataOut
    # Personal fields that read back empty because their subject was erased.
    erased: list[str]

    @classmethod
    def of(cls, recorded: RecordedEvent) -> AuditEventOut:
        return cls(
            position=recorded.position,
            transaction_id=recorded.transaction_id,
            event_id=recorded.event_id,
            stream_id=recorded.stream_id,
            stream_type=recorded.stream_type,
            version=recorded.version,
            event_type=recorded.event_type,
            recorded_at=recorded.recorded_at,
            data=_camel_keys(event_fields(recorded.event)),
            metadata=MetadataOut.of(recorded.metadata),
            erased=[_camel(name) for name in recorded.erased],
        )


class AuditEventsOut(msgspec.Struct, kw_only=True, rename="camel"):
    events: list[AuditEventOut]
    next_cursor: str | None


class StreamOut(msgspec.Struct, kw_only=True, rename="camel"):
    stream_id: str
    tenant: str
    # The version the state is at: that of the last event up to the requested point.
    version: int
    # The aggregate replayed up to that point, or null if it did not exist yet.
    state: dict[str, Any] | None
    events: list[AuditEventOut]


class ChainHeadOut(msgspec.Struct, kw_only=True, rename="camel"):
    sealed: int
    position: int
    transaction_id: int
    hash: str
    sealed_at: datetime | None


class AuditController(Controller):
    path = "/api/audit"
    tags = ["audit"]

    @get("/events", **requires(Permission.AUDIT), **responses_for())
    async def list_events(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        stream_id: Annotated[str | None, _query("streamId", "Only this stream")] = None,
        stream_type: Annotated[str | None, _query("streamType", "e.g. fan, message")] = None,
        event_type: Annotated[str | None, _query("eventType", "e.g. FanCreated")] = None,
        tenant: Annotated[str | None, _query("tenant", "Only this tenant (user id)")] = None,
        actor: Annotated[str | None, _query("actor", "Only events caused by this actor")] = None,
        since: Annotated[datetime | None, _query("from", "Recorded at or after")] = None,
        until: Annotated[datetime | None, _query("to", "Recorded before")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[str | None, _query("cursor", "nextCursor of the previous page")] = None,
    ) -> AuditEventsOut:
        query = events_query(
            await _scope(request, container),
            AuditFilter(
                stream_id=stream_id,
                stream_type=stream_type,
                event_type=event_type,
                tenant=tenant,
                actor=actor,
                since=since,
                until=until,
            ),
            limit=limit,
            cursor=cursor,
        )
        page = await container.audit.events(query)
        return AuditEventsOut(
            events=[AuditEventOut.of(event) for event in page.events],
            next_cursor=page.next_cursor,
        )

    @get("/streams/{stream_id:str}", **requires(Permission.AUDIT), **responses_for(found=True))
    async def get_stream(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        stream_id: FromPath[str],
        version: Annotated[
            int | None,
            QueryParameter(
                ge=0,
                le=2**31 - 1,
                description="The state as of this version",
                # litestar leaves a bound of 0 out of the document (it is falsy)
                schema_extra={"minimum": 0},
            ),
        ] = None,
        as_of: Annotated[datetime | None, _query("asOf", "The state as of this time")] = None,
    ) -> StreamOut:
        found = await stream_as_of(
            container.events,
            stream_id,
            await _scope(request, container),
            up_to_version=version,
            as_of=as_of,
        )
        return StreamOut(
            stream_id=found.stream_id,
            tenant=found.tenant,
            version=found.events[-1].version if found.events else 0,
            state=render_state(found.state),
            events=[AuditEventOut.of(event) for event in found.events],
        )

    @get("/head", **requires(Permission.AUDIT_CHAIN), **responses_for(params=False))
    async def head(self, request: Request[Principal, Any, Any], container: Deps) -> ChainHeadOut:
        head = await PostgresEventChain(container.pool).head()
        return ChainHeadOut(
            sealed=head.sealed,
            position=head.position,
            transaction_id=head.transaction_id,
            hash=head.hash.hex(),
            sealed_at=head.sealed_at,
        )


async def _scope(request: Request[Principal, Any, Any], container: Container) -> AuditScope:
    principal = request.user
    grants = await granted_tenants(container.pool, principal.key_id)
    return scope_for(principal.held(), principal.user_id, grants)


def render_state(aggregate: Any) -> dict[str, Any] | None:
    """Any aggregate as JSON, from its public attributes: new aggregates need no code here."""
    if aggregate is None:
        return None
    public = {name: value for name, value in vars(aggregate).items() if not name.startswith("_")}
    state = {
        "id": aggregate.id,
        "version": aggregate.version,
        "createdOn": aggregate.created_on,
        "modifiedOn": aggregate.modified_on,
        **_camel_keys(public),
    }
    rendered: dict[str, Any] = msgspec.to_builtins(state, enc_hook=str)
    return rendered


def _camel_keys(fields: dict[str, Any]) -> dict[str, Any]:
    return {_camel(name): value for name, value in fields.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
