"""/api/crm/fans: the reference's FansRepository operations over HTTP."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, HttpMethod, Request, Response, delete, get, post, route
from litestar.di import NamedDependency
from litestar.params import (
    FromPath,
    FromQuery,
    HeaderParameter,
    JSONBody,
    QueryParameter,
)

from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.permissions import require, requires
from adapters.http.schemas import (
    TAG_RULE,
    CreateFanBody,
    FanChangedOut,
    FanDeletedOut,
    FanEnvelope,
    FanListOut,
    FanOut,
    UpdateFanBody,
    decode_strictly,
)
from adapters.postgres.api_keys import Principal
from application import fans
from application.errors import NotFound
from application.fan_queries import FanSort, ListFans
from application.permissions import Permission
from domain.errors import InvalidValue

Deps = NamedDependency[Container]
MinPosition = Annotated[
    int | None,
    QueryParameter(
        name="minPosition",
        ge=1,
        le=2**63 - 1,  # positions are bigint; asyncpg cannot even send a larger number
        description="Wait (briefly) until the view includes this event position (another"
        " client's write: this API key's own writes are waited for without it).",
    ),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description="The fan's version; 409 if it moved on.",
        schema_extra={"pattern": r'^(W/)?"?[0-9]{1,18}"?$'},
    ),
]


class FansController(Controller):
    path = "/api/crm/fans"
    tags = ["fans"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_fans(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
        tag: Annotated[str | None, QueryParameter(schema_extra=TAG_RULE)] = None,
        q: Annotated[
            str | None, QueryParameter(description="Text in name, handle or email")
        ] = None,
        sort: FromQuery[FanSort] = "-createdAt",
        min_position: MinPosition = None,
    ) -> FanListOut:
        await read_your_writes(request, container, ["fans"], min_position)
        page = await container.fans.list_fans(
            ListFans(
                tenant=request.user.user_id,
                limit=limit,
                cursor=cursor,
                tag=tag,
                search=q,
                sort=sort,
            )
        )
        return FanListOut(
            fans=[FanOut.from_view(view) for view in page.fans], next_cursor=page.next_cursor
        )

    @get("/{fan_id:int}", **requires(Permission.READ), **responses_for(found=True, lagging=True))
    async def get_fan(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        fan_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> Response[FanEnvelope]:
        await read_your_writes(request, container, ["fans"], min_position)
        view = await container.fans.get_fan(request.user.user_id, fan_id)
        if view is None:
            raise NotFound(f"fan {fan_id}")
        return _with_etag(FanEnvelope(fan=FanOut.from_view(view)), view.version)

    @post(**requires(Permission.WRITE), **responses_for(body=True, idempotent=True))
    async def create_fan(
        self, request: Request[Principal, Any, Any], container: Deps, data: JSONBody[CreateFanBody]
    ) -> Response[FanChangedOut]:
        data = decode_strictly(await request.body(), CreateFanBody)
        ctx = command_context(request)

        async def run() -> Response[Any]:
            result = await fans.create_fan(
                fans.CreateFan(
                    platform=data.platform,
                    platform_id=data.platform_id,
                    name=data.name,
                    handle=data.handle,
                    email=data.email,
                    value_cents=data.value_cents,
                    tags=tuple(data.tags),
                    notes=data.notes,
                    subscribed_at=data.subscribed_at,
                ),
                ctx,
                store=container.events,
                ids=container.ids,
            )
            return _changed(result, status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    # PUT is accepted too: the reference's updateFan is a partial update, whatever the verb.
    @route(
        "/{fan_id:int}",
        http_method=[HttpMethod.PATCH, HttpMethod.PUT],
        **requires(Permission.WRITE),
        **responses_for(body=True, found=True, conflict=True),
    )
    async def update_fan(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        fan_id: FromPath[int],
        data: JSONBody[UpdateFanBody],
        if_match: IfMatch = None,
    ) -> Response[FanChangedOut]:
        data = decode_strictly(await request.body(), UpdateFanBody)
        result = await fans.update_fan(
            fans.UpdateFan(
                fan_id=fan_id, changes=data.changes(), expected_version=_version(if_match)
            ),
            command_context(request),
            store=container.events,
        )
        return _changed(result, status_code=200)

    @delete(
        "/{fan_id:int}",
        status_code=200,
        **requires(Permission.WRITE),
        **responses_for(found=True, conflict=True),
    )
    async def delete_fan(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        fan_id: FromPath[int],
        if_match: IfMatch = None,
        erase: Annotated[
            bool,
            QueryParameter(
                description="Also erase the fan's personal data, everywhere and for good."
            ),
        ] = False,
    ) -> FanDeletedOut:
        ctx = command_context(request)
        if erase:
            require(request.user, Permission.ERASE)
            result = await fans.erase_fan(fans.EraseFan(fan_id=fan_id), ctx, store=container.events)
        else:
            result = await fans.delete_fan(
                fans.DeleteFan(fan_id=fan_id, expected_version=_version(if_match)),
                ctx,
                store=container.events,
            )
        return FanDeletedOut(id=fan_id, deleted=True, erased=erase, position=result.position)


def _changed(result: fans.FanChanged, *, status_code: int) -> Response[FanChangedOut]:
    body = FanChangedOut(fan=FanOut.from_aggregate(result.fan), position=result.position)
    return _with_etag(body, result.fan.version, status_code=status_code)


def _with_etag(body: Any, version: int, *, status_code: int = 200) -> Response[Any]:
    return Response(body, status_code=status_code, headers={"ETag": f'"{version}"'})


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    # Not str.isdigit(): it accepts '²' (a latin-1 header byte) and int() then fails with a 500.
    if not _VERSION.fullmatch(text):
        raise InvalidValue("if_match", "must be the fan's version, as in its ETag")
    return int(text)


_VERSION = re.compile(r"[0-9]{1,18}")
