"""/api/crm/people: fans of one account, on any platforms, linked as one person."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.fans import MinPosition
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.people_schemas import (
    CreatePersonBody,
    LinkFanBody,
    PeopleListOut,
    PersonChangedOut,
    PersonEnvelope,
    PersonOut,
    SuggestionOut,
    SuggestionsOut,
)
from adapters.http.permissions import requires
from adapters.http.schemas import decode_strictly
from adapters.postgres.api_keys import Principal
from application import people
from application.errors import NotFound
from application.permissions import Permission

Deps = NamedDependency[Container]
# A person's view joins three read models: a write is seen once all of them have it.
VIEWS = ["people", "fans", "conversations"]


class PeopleController(Controller):
    path = "/api/crm/people"
    tags = ["people"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_people(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> PeopleListOut:
        await read_your_writes(request, container, VIEWS, min_position)
        page = await container.people.list_people(request.user.user_id, limit, cursor)
        return PeopleListOut(
            people=[PersonOut.from_view(view) for view in page.people],
            next_cursor=page.next_cursor,
        )

    @get("/suggestions", **requires(Permission.READ), **responses_for(lagging=True))
    async def suggestions(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> SuggestionsOut:
        """Live fans not linked to anyone, on two platforms or more, whose handles (without
        case or a leading '@') or emails are the same: candidates to link, never linked."""
        await read_your_writes(request, container, ["people", "fans"], min_position)
        found = await container.people.suggestions(request.user.user_id, limit)
        return SuggestionsOut(suggestions=[SuggestionOut.from_view(s) for s in found])

    @get("/{person_id:int}", **requires(Permission.READ), **responses_for(found=True, lagging=True))
    async def get_person(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        person_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> PersonEnvelope:
        await read_your_writes(request, container, VIEWS, min_position)
        view = await container.people.get_person(request.user.user_id, person_id)
        if view is None:
            raise NotFound(f"person {person_id}")
        return PersonEnvelope(person=PersonOut.from_view(view))

    @post(**requires(Permission.WRITE), **responses_for(body=True, idempotent=True))
    async def create_person(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[CreatePersonBody],
    ) -> Response[PersonChangedOut]:
        data = decode_strictly(await request.body(), CreatePersonBody)
        ctx = command_context(request)

        async def run() -> Response[Any]:
            result = await people.create_person(
                people.CreatePerson(fan_ids=tuple(data.fan_ids)),
                ctx,
                store=container.events,
                ids=container.ids,
            )
            return Response(PersonChangedOut.of(result.person, result.position), status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @post(
        "/{person_id:int}/fans",
        status_code=200,
        **requires(Permission.WRITE),
        **responses_for(body=True, found=True, idempotent=True),
    )
    async def link_fan(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        person_id: FromPath[int],
        data: JSONBody[LinkFanBody],
    ) -> Response[PersonChangedOut]:
        data = decode_strictly(await request.body(), LinkFanBody)
        ctx = command_context(request)

        async def run() -> Response[Any]:
            result = await people.link_fan(
                people.LinkFan(person_id=person_id, fan_id=data.fan_id),
                ctx,
                store=container.events,
            )
            return Response(PersonChangedOut.of(result.person, result.position))

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @delete(
        "/{person_id:int}/fans/{fan_id:int}",
        status_code=200,
        **requires(Permission.WRITE),
        **responses_for(found=True, conflict=True),
    )
    async def unlink_fan(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        person_id: FromPath[int],
        fan_id: FromPath[int],
    ) -> PersonChangedOut:
        result = await people.unlink_fan(
            people.UnlinkFan(person_id=person_id, fan_id=fan_id),
            command_context(request),
            store=container.events,
        )
        return PersonChangedOut.of(result.person, result.position)
