"""Suggested replies to a fan's last message: the account's own replies that worked in similar
contexts (retrieved and ranked by the index), optionally rewritten by a language model.

The model is told only what it needs: the fan's last message with the fan's name, first name
and handle turned into placeholders, and the retrieved templates. No names, no ids. It is never
asked about an erased fan (whose conversation the index no longer holds).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.campaign import render
from domain.reply_suggestions import Outcome, templatise

SUGGESTIONS = 3


class FanMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The fan's last message in a conversation, with what names the fan."""

    message_id: str
    content: str
    name: str | None
    handle: str | None


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A past reply that worked, as a template; ``message_id`` the best of its copies."""

    message_id: str
    template: str
    outcome: Outcome
    uses: int
    score: float


class SuggestionIndex(Protocol):
    async def fan_message(self, tenant: str, conversation_id: int) -> FanMessage | None: ...

    async def candidates(self, tenant: str, text: str, limit: int) -> list[Candidate]: ...


class ReplyWriter(Protocol):
    async def write(self, fan_message: str, candidates: list[str], count: int) -> list[str] | None:
        """Up to ``count`` reply templates; None if it failed (the writer says why)."""
        ...


class Suggestion(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    source: str  # "history" or "llm"
    score: float | None
    based_on: Candidate | None


class Suggestions(msgspec.Struct, frozen=True, kw_only=True):
    fan_message_id: str | None
    suggestions: list[Suggestion]


async def suggest_replies(
    tenant: str,
    conversation_id: int,
    *,
    index: SuggestionIndex,
    writer: ReplyWriter | None,
    count: int = SUGGESTIONS,
) -> Suggestions:
    fan = await index.fan_message(tenant, conversation_id)
    if fan is None:
        return Suggestions(fan_message_id=None, suggestions=[])
    candidates = await index.candidates(tenant, fan.content, count)
    retrieved = [
        Suggestion(content=_filled(c.template, fan), source="history", score=c.score, based_on=c)
        for c in candidates
    ]
    if writer is None:
        return Suggestions(fan_message_id=fan.message_id, suggestions=retrieved)
    message = templatise(fan.content, name=fan.name, handle=fan.handle)
    written = await writer.write(message, [c.template for c in candidates], count)
    if not written:
        return Suggestions(fan_message_id=fan.message_id, suggestions=retrieved)
    drafted = [
        Suggestion(content=_filled(text, fan), source="llm", score=None, based_on=None)
        for text in written[:count]
    ]
    # A draft that only repeats a retrieved reply is that reply, with its evidence.
    repeated = {s.content.casefold() for s in retrieved}
    drafted = [s for s in drafted if s.content.casefold() not in repeated]
    return Suggestions(fan_message_id=fan.message_id, suggestions=[*drafted, *retrieved][:count])


def _filled(template: str, fan: FanMessage) -> str:
    return render(template, name=fan.name, handle=fan.handle).strip()
