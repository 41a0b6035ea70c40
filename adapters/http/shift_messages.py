"""/api/workspace/shifts/{shiftId}/unanswered: what fans wrote during a shift that nobody
answered before it ended (the analytics_members view), on the shift's accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from adapters.bootstrap import Container
from adapters.http.context import read_your_writes
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.postgres.api_keys import Principal
from adapters.postgres.member_analytics_read_model import UnansweredMessage
from application.errors import NotFound
from application.permissions import Permission
from application.shifts import sees
from domain.shift import member_of_shift

Deps = NamedDependency[Container]
MAX_UNANSWERED = 500


class UnansweredOut(msgspec.Struct, kw_only=True, rename="camel"):
    shift_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime
    messages: list[UnansweredMessage]
    truncated: bool  # more than ``limit`` were waiting: the earliest received are listed


class ShiftMessagesController(Controller):
    path = "/api/workspace/shifts"
    tags = ["workspace"]

    @get(
        "/{shift_id:str}/unanswered",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def unanswered(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        shift_id: FromPath[str],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_UNANSWERED)] = 100,
    ) -> UnansweredOut:
        """Fans' messages received during the shift, on its accounts, not answered by its
        end (those answered later carry `answeredAt`), earliest first. A caller restricted to
        some accounts finds only the shifts touching them (else 404), and their messages on
        those accounts only."""
        principal = request.user
        if member_of_shift(shift_id) is None:
            raise NotFound(f"shift {shift_id}")
        await read_your_writes(request, container, ["workspaces", "analytics_members"])
        shift = await container.workspaces.shift(principal.workspace_id, shift_id)
        if shift is None or not sees(principal.accounts, _tuple(shift.accounts)):
            raise NotFound(f"shift {shift_id}")
        view = container.member_analytics
        accounts = shift.accounts
        if accounts is None:
            accounts = await view.workspace_accounts(principal.workspace_id)
        if principal.accounts is not None:
            # A shift may span accounts the caller may not read: their fans stay hidden.
            accounts = [a for a in accounts if a in principal.accounts]
        found = await view.unanswered(accounts, shift.starts_at, shift.ends_at, limit + 1)
        return UnansweredOut(
            shift_id=shift.shift_id,
            member_id=shift.member_id,
            starts_at=shift.starts_at,
            ends_at=shift.ends_at,
            messages=found[:limit],
            truncated=len(found) > limit,
        )


def _tuple(accounts: list[str] | None) -> tuple[str, ...] | None:
    return None if accounts is None else tuple(accounts)
