"""GET /api/crm/conversations/{id}/suggestions: replies to the fan's last message."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from adapters.bootstrap import Container
from adapters.http.context import read_your_writes
from adapters.http.conversations import MinPosition
from adapters.http.openapi import responses_for
from adapters.http.permissions import requires
from adapters.postgres.api_keys import Principal
from application.errors import NotFound
from application.permissions import Permission
from application.reply_suggestions import Suggestion, suggest_replies

Deps = NamedDependency[Container]


class BasedOnOut(msgspec.Struct, kw_only=True, rename="camel"):
    # The past reply this suggestion is (the latest copy that was bought, else the latest).
    message_id: str
    outcome: Literal["replied", "purchased"]
    # How many times this reply worked in a context like this one.
    uses: int


class SuggestionOut(msgspec.Struct, kw_only=True, rename="camel"):
    content: str
    source: Literal["history", "llm"]
    # The retrieval's score (similarity times outcome weight, summed over uses); null for a draft.
    score: float | None
    based_on: BasedOnOut | None

    @classmethod
    def of(cls, suggestion: Suggestion) -> SuggestionOut:
        based = suggestion.based_on
        return cls(
            content=suggestion.content,
            source="llm" if suggestion.source == "llm" else "history",
            score=suggestion.score,
            based_on=None
            if based is None
            else BasedOnOut(message_id=based.message_id, outcome=based.outcome, uses=based.uses),
        )


class SuggestionsOut(msgspec.Struct, kw_only=True, rename="camel"):
    suggestions: list[SuggestionOut]
    # The fan message they answer; null when the fan has written nothing (or was erased).
    fan_message_id: str | None


class SuggestionsController(Controller):
    path = "/api/crm/conversations"
    tags = ["conversations"]

    @get(
        "/{conversation_id:int}/suggestions",
        **requires(Permission.READ),
        **responses_for(found=True, lagging=True),
    )
    async def suggestions(
        self,
        request: Request[Principal, Any, Any],
        container: Deps,
        conversation_id: FromPath[int],
        min_position: MinPosition = None,
    ) -> SuggestionsOut:
        """Up to three replies to the fan's last message, from the account's own replies that
        got a reply or a purchase after a similar message, best first; with a language model
        configured (CRM_LLM_*), its drafts first."""
        await read_your_writes(request, container, ["conversations", "suggestions"], min_position)
        tenant = request.user.user_id
        if await container.messaging.get_conversation(tenant, conversation_id) is None:
            raise NotFound(f"conversation {conversation_id}")
        found = await suggest_replies(
            tenant,
            conversation_id,
            index=container.suggestions,
            writer=container.reply_writer,
        )
        return SuggestionsOut(
            suggestions=[SuggestionOut.of(s) for s in found.suggestions],
            fan_message_id=found.fan_message_id,
        )
