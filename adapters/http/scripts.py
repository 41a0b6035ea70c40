"""/api/crm/scripts (saved replies) and /api/crm/sensitive-words, per account."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import UNSET

from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.http.schemas import decode_strictly
from adapters.http.script_schemas import (
    CreateScriptBody,
    ScriptChangedOut,
    ScriptDeletedOut,
    ScriptEnvelope,
    ScriptListOut,
    ScriptOut,
    SensitiveWordsBody,
    SensitiveWordsOut,
    UpdateScriptBody,
)
from adapters.postgres.api_keys import Principal
from application import scripts
from application.errors import Forbidden, NotFound
from application.permissions import Permission
from application.sensitive_words import set_sensitive_words

Deps = NamedDependency[Container]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
MinPosition = Annotated[
    int | None,
    QueryParameter(
        name="minPosition",
        ge=1,
        le=2**63 - 1,
        description="Wait (briefly) until the view includes this event position (another"
        " client's write: this API key's own writes are waited for without it).",
    ),
]
_VIEWS = ["scripts"]


class ScriptsController(Controller):
    path = "/api/crm/scripts"
    tags = ["scripts"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_scripts(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> ScriptListOut:
        """The account's scripts, newest first, with what the messages sent from each did."""
        await read_your_writes(request, container, _VIEWS, min_position)
        page = await container.scripts.list_scripts(
            request.user.user_id, limit, cursor, request.user.workspace_id
        )
        return ScriptListOut(
            scripts=[ScriptOut.from_view(view) for view in page.scripts],
            next_cursor=page.next_cursor,
        )

    @get(
        "/{script_id:int}",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def get_script(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        script_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> ScriptEnvelope:
        """The script, and ``metrics``: of the messages sent from it, how many the platform
        accepted (sent), how many PPVs among them were bought, and for how much."""
        await read_your_writes(request, container, _VIEWS, min_position)
        view = await container.scripts.get_script(
            request.user.user_id, script_id, request.user.workspace_id
        )
        if view is None:
            raise NotFound(f"script {script_id}")
        return ScriptEnvelope(script=ScriptOut.from_view(view))

    @post(
        status_code=201,
        **requires(Permission.WRITE),
        **responses_for(body=True, idempotent=True),
    )
    async def create_script(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[CreateScriptBody],
    ) -> Response[ScriptChangedOut]:
        body = decode_strictly(await request.body(), CreateScriptBody)
        ctx = command_context(request)
        if body.scope == "workspace" and not request.user.may_act_on(ctx.workspace_id or ""):
            raise Forbidden("a workspace's script is written on its founding account")

        async def run() -> Response[Any]:
            changed = await scripts.create_script(
                scripts.WriteScript(
                    name=body.name,
                    content=body.content,
                    price_cents=body.price_cents,
                    media_urls=tuple(body.media_urls),
                    shared=body.scope == "workspace",
                ),
                ctx,
                store=container.events,
                ids=container.ids,
            )
            return Response(_changed(changed), status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @patch(
        "/{script_id:int}",
        **requires(Permission.WRITE),
        **responses_for(body=True, found=True, conflict=True),
    )
    async def update_script(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        script_id: FromPath[int],
        data: JSONBody[UpdateScriptBody],
    ) -> ScriptChangedOut:
        body = decode_strictly(await request.body(), UpdateScriptBody)
        changed = await scripts.update_script(
            scripts.ChangeScript(
                script_id=script_id,
                name=None if body.name is UNSET else body.name,
                content=None if body.content is UNSET else body.content,
                price_cents=None if body.price_cents is UNSET else body.price_cents,
                media_urls=None if body.media_urls is UNSET else tuple(body.media_urls),
            ),
            command_context(request),
            store=container.events,
        )
        return _changed(changed)

    @delete(
        "/{script_id:int}",
        status_code=200,
        **requires(Permission.WRITE),
        **responses_for(found=True, conflict=True),
    )
    async def delete_script(
        self, request: Request[Principal, Any, Any], container: Deps, script_id: FromPath[int]
    ) -> ScriptDeletedOut:
        changed = await scripts.delete_script(
            script_id, command_context(request), store=container.events
        )
        return ScriptDeletedOut(id=script_id, deleted=True, position=changed.position)


class SensitiveWordsController(Controller):
    path = "/api/crm/sensitive-words"
    tags = ["scripts"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def get_words(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        min_position: MinPosition = None,
    ) -> SensitiveWordsOut:
        """The words no message of this account may contain (empty until some are set)."""
        await read_your_writes(request, container, ["sensitive_words"], min_position)
        return SensitiveWordsOut(
            words=await container.scripts.sensitive_words(request.user.user_id)
        )

    @put(
        **requires(Permission.WRITE),
        **responses_for(body=True, conflict=True),
    )
    async def set_words(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[SensitiveWordsBody],
    ) -> SensitiveWordsOut:
        """Replace the list. A send (single, batch, or a campaign's content) holding one of
        them, case-insensitively and as a whole word, is refused with 422 naming it."""
        body = decode_strictly(await request.body(), SensitiveWordsBody)
        listed, position = await set_sensitive_words(
            body.words, command_context(request), store=container.events
        )
        return SensitiveWordsOut(words=list(listed.words), position=position)


def _changed(changed: scripts.ScriptChanged) -> ScriptChangedOut:
    return ScriptChangedOut(
        script=ScriptOut.from_aggregate(changed.script), position=changed.position
    )
