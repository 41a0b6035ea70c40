"""/api/workspace/shifts: who of the workspace works when, on which accounts."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import idempotency_key, message_id_for, replay_or_run
from adapters.http.openapi import IDEMPOTENCY_KEY, responses_for, rule
from adapters.http.permissions import requires
from adapters.http.schemas import NO_NUL, Body, decode_strictly
from adapters.postgres.api_keys import Principal
from adapters.postgres.workspace_read_model import ShiftFilter, ShiftView
from application import shifts
from application.permissions import Permission
from domain.errors import InvalidValue
from domain.shift import MAX_ACCOUNTS

Deps = NamedDependency[Container]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
MinPosition = Annotated[int | None, QueryParameter(name="minPosition", ge=1, le=2**63 - 1)]
AccountId = Annotated[
    str, rule("An account of the workspace", min_length=1, max_length=200, pattern=NO_NUL)
]
_SCHEDULED_ONCE = dataclasses.replace(
    IDEMPOTENCY_KEY,
    description=IDEMPOTENCY_KEY.description
    + " It also decides the shift's id (`<memberId>.<32 hex>`, the hex part): a shift is"
    " never scheduled twice.",
)


class ShiftBody(Body):
    member_id: Annotated[
        str, rule("A member, active or invited", min_length=1, max_length=200, pattern=NO_NUL)
    ]
    starts_at: Annotated[datetime, rule("ISO 8601 with a time zone")]
    ends_at: Annotated[datetime, rule("After startsAt, at most 24 hours later")]
    # Absent: the member's own accounts.
    accounts: (
        Annotated[list[AccountId], rule("At most 100", max_items=MAX_ACCOUNTS)]
        | Literal["all"]
        | None
    ) = None


class ShiftOut(msgspec.Struct, kw_only=True, rename="camel"):
    shift_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime
    accounts: list[str] | Literal["all"]


class ScheduledOut(ShiftOut, kw_only=True, rename="camel"):
    position: int


class ListedShiftOut(ShiftOut, kw_only=True, rename="camel"):
    scheduled_by: str  # the actor: member:<id>, or apikey:<id> for a key of the first release
    scheduled_at: datetime

    @classmethod
    def from_view(cls, view: ShiftView) -> ListedShiftOut:
        return cls(
            shift_id=view.shift_id,
            member_id=view.member_id,
            starts_at=view.starts_at,
            ends_at=view.ends_at,
            accounts="all" if view.accounts is None else view.accounts,
            scheduled_by=view.scheduled_by,
            scheduled_at=view.scheduled_at,
        )


class ShiftListOut(msgspec.Struct, kw_only=True, rename="camel"):
    shifts: list[ListedShiftOut]
    next_cursor: str | None


class ShiftCancelledOut(msgspec.Struct, kw_only=True, rename="camel"):
    shift_id: str
    cancelled: bool
    position: int


class ShiftsController(Controller):
    path = "/api/workspace/shifts"
    tags = ["workspace"]

    @post(
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(body=True, conflict=True, idempotent=True),
    )
    async def schedule(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[ShiftBody]
    ) -> Response[ScheduledOut]:
        """Schedule a member's shift (409 if it overlaps another of the member's)."""
        body = decode_strictly(await request.body(), ShiftBody)
        principal = request.user
        ctx = command_context(request)
        key = idempotency_key(request)
        # The key decides the id's own part too: even a retry after its stored answer expired
        # schedules nothing twice (409).
        suffix = (
            uuid.UUID(message_id_for(principal.workspace_id, f"shift\x00{key}")).hex
            if key
            else None
        )

        async def run() -> Response[Any]:
            scheduled = await shifts.schedule_shift(
                shifts.ScheduleShift(
                    workspace_id=principal.workspace_id,
                    member_id=body.member_id,
                    starts_at=body.starts_at,
                    ends_at=body.ends_at,
                    accounts=tuple(body.accounts)
                    if isinstance(body.accounts, list)
                    else body.accounts,
                    scheduler_accounts=principal.accounts,
                    now=datetime.now(UTC),
                    suffix=suffix,
                ),
                ctx,
                store=container.events,
            )
            shift = scheduled.shift
            out = ScheduledOut(
                shift_id=shift.shift_id,
                member_id=shift.member_id,
                starts_at=shift.starts_at,
                ends_at=shift.ends_at,
                accounts="all" if shift.accounts is None else list(shift.accounts),
                position=scheduled.position,
            )
            return Response(out, status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_shifts(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        member_id: Annotated[
            str | None, QueryParameter(name="memberId", min_length=1, max_length=200)
        ] = None,
        since: Annotated[
            datetime | None, QueryParameter(name="from", description="Shifts ending after it")
        ] = None,
        until: Annotated[
            datetime | None, QueryParameter(name="to", description="Shifts starting before it")
        ] = None,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> ShiftListOut:
        """The workspace's shifts overlapping [from, to), earliest start first; a member
        restricted to some accounts sees the shifts touching them."""
        where = ShiftFilter(
            member_id=member_id,
            since=_utc("from", since),
            until=_utc("to", until),
            scope=request.user.accounts,
        )
        if where.since is not None and where.until is not None and where.until <= where.since:
            raise InvalidValue("to", "must be after from")
        await read_your_writes(request, container, ["workspaces"], min_position)
        page = await container.workspaces.shifts(request.user.workspace_id, where, limit, cursor)
        return ShiftListOut(
            shifts=[ListedShiftOut.from_view(view) for view in page.items],
            next_cursor=page.next_cursor,
        )

    @delete(
        "/{shift_id:str}",
        status_code=200,
        **requires(Permission.MANAGE_MEMBERS),
        **responses_for(found=True, conflict=True),
    )
    async def cancel(
        self, request: Request[Principal, Any, Any], container: Deps, shift_id: FromPath[str]
    ) -> ShiftCancelledOut:
        """Cancel a shift: it is gone from the list. Decided on the member's stream, which
        the shift's id names (``<memberId>.<32 hex>``): never on the list, which may lag."""
        position = await shifts.cancel_shift(
            request.user.workspace_id,
            shift_id,
            request.user.accounts,
            command_context(request),
            store=container.events,
        )
        return ShiftCancelledOut(shift_id=shift_id, cancelled=True, position=position)


def _utc(name: str, at: datetime | None) -> datetime | None:
    """Times on the wire carry their zone (DESIGN: UTC, ISO 8601); one without is ambiguous."""
    if at is None:
        return None
    if at.tzinfo is None:
        raise InvalidValue(name, "must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise InvalidValue(name, "is out of range") from None
