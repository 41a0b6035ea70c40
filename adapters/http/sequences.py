"""/api/crm/sequences: automated series of messages (drip, re-engagement), per account.
Creator keys write; auditors and admins read. DELETE archives (the history stays)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from adapters.bootstrap import Container
from adapters.http.context import command_context, read_your_writes
from adapters.http.idempotency import replay_or_run
from adapters.http.openapi import responses_for
from adapters.http.permissions import require, requires
from adapters.http.schemas import decode_strictly
from adapters.http.scripts import Limit, MinPosition
from adapters.http.sequence_schemas import (
    CreateSequenceBody,
    SequenceChangedOut,
    SequenceEnvelope,
    SequenceListOut,
    SequenceOut,
    UpdateSequenceBody,
)
from adapters.postgres.api_keys import Principal
from application import sequences
from application.context import CommandContext
from application.errors import NotFound
from application.permissions import Permission

Deps = NamedDependency[Container]
_VIEWS = ["sequences"]
_LIFECYCLE = responses_for(params=False, found=True, conflict=True, idempotent=True)
Change = Callable[..., Awaitable[sequences.SequenceChanged]]


class SequencesController(Controller):
    path = "/api/crm/sequences"
    tags = ["sequences"]

    @get(**requires(Permission.READ), **responses_for(lagging=True))
    async def list_sequences(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        limit: Limit = 50,
        cursor: FromQuery[str | None] = None,
        min_position: MinPosition = None,
    ) -> SequenceListOut:
        """The account's sequences, newest first."""
        await read_your_writes(request, container, _VIEWS, min_position)
        page = await container.sequences.list_sequences(request.user.user_id, limit, cursor)
        return SequenceListOut(
            sequences=[SequenceOut.from_view(view) for view in page.sequences],
            next_cursor=page.next_cursor,
        )

    @get(
        "/{sequence_id:int}",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def get_sequence(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        sequence_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> SequenceEnvelope:
        """The sequence with ``metrics`` per step: runs that reached it (entered), its
        messages queued (sent), replies and purchases after it, revenue, and runs that ended
        while waiting for it, per reason (exited)."""
        await read_your_writes(request, container, _VIEWS, min_position)
        view = await container.sequences.get_sequence(request.user.user_id, sequence_id)
        if view is None:
            raise NotFound(f"sequence {sequence_id}")
        return SequenceEnvelope(sequence=SequenceOut.from_view(view, with_metrics=True))

    @post(
        status_code=201,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **responses_for(body=True, idempotent=True),
    )
    async def create_sequence(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        data: JSONBody[CreateSequenceBody],
    ) -> Response[SequenceChangedOut]:
        body = decode_strictly(await request.body(), CreateSequenceBody)
        if any(step.sells for step in body.steps):
            require(request.user, Permission.SEND_PPV)
        ctx = command_context(request)

        async def run() -> Response[Any]:
            changed = await sequences.create_sequence(
                body.command(), ctx, store=container.events, ids=container.ids
            )
            return Response(_changed(changed), status_code=201)

        return await replay_or_run(container.idempotency, request, ctx.tenant, run)

    @patch(
        "/{sequence_id:int}",
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **responses_for(body=True, found=True, conflict=True),
    )
    async def update_sequence(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        sequence_id: FromPath[int],
        data: JSONBody[UpdateSequenceBody],
    ) -> SequenceChangedOut:
        """Name, steps, exit rules, re-entry, time zone; runs under way follow the new steps
        from their next one. Refused (409) once archived."""
        body = decode_strictly(await request.body(), UpdateSequenceBody)
        steps = body.steps if isinstance(body.steps, list) else []
        if any(step.sells for step in steps):
            require(request.user, Permission.SEND_PPV)
        changed = await sequences.update_sequence(
            body.command(sequence_id), command_context(request), store=container.events
        )
        return _changed(changed)

    @post(
        "/{sequence_id:int}/pause",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **_LIFECYCLE,
    )
    async def pause(
        self, request: Request[Principal, Any, Any], container: Deps, sequence_id: FromPath[int]
    ) -> Response[SequenceChangedOut]:
        """No step is sent while paused; triggers enrol no one. Runs keep their place."""
        return await _once(container, request, sequence_id, sequences.pause_sequence)

    @post(
        "/{sequence_id:int}/resume",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **_LIFECYCLE,
    )
    async def resume(
        self, request: Request[Principal, Any, Any], container: Deps, sequence_id: FromPath[int]
    ) -> Response[SequenceChangedOut]:
        """Steps that fell due meanwhile go out at once."""
        return await _once(container, request, sequence_id, sequences.resume_sequence)

    @post(
        "/{sequence_id:int}/archive",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **_LIFECYCLE,
    )
    async def archive(
        self, request: Request[Principal, Any, Any], container: Deps, sequence_id: FromPath[int]
    ) -> Response[SequenceChangedOut]:
        """For good: its runs end (reason "archived") and it takes no edit."""
        return await _once(container, request, sequence_id, sequences.archive_sequence)

    @delete(
        "/{sequence_id:int}",
        status_code=200,
        **requires(Permission.LAUNCH_CAMPAIGNS),
        **responses_for(found=True),
    )
    async def delete_sequence(
        self, request: Request[Principal, Any, Any], container: Deps, sequence_id: FromPath[int]
    ) -> SequenceChangedOut:
        """The same as archive (a sequence's history is kept for its metrics)."""
        changed = await sequences.archive_sequence(
            sequence_id, command_context(request), store=container.events
        )
        return _changed(changed)


async def _once(
    container: Container, request: Request[Principal, Any, Any], sequence_id: int, change: Change
) -> Response[Any]:
    """A lifecycle POST, with its Idempotency-Key honoured."""
    ctx: CommandContext = command_context(request)

    async def run() -> Response[Any]:
        return Response(_changed(await change(sequence_id, ctx, store=container.events)))

    return await replay_or_run(container.idempotency, request, ctx.tenant, run)


def _changed(changed: sequences.SequenceChanged) -> SequenceChangedOut:
    return SequenceChangedOut(
        sequence=SequenceOut.from_aggregate(changed.sequence), position=changed.position
    )
