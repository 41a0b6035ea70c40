"""An account's sensitive words: set the list, and check a send's content against it.

The check decides on the event store, never on a read model that may lag. To keep a send to
one stream read, the list is cached per account with the version of its stream it was read
at, and the send's append holds that stream at that version (a write without events, in the
statement that records the message): a list changed since fails that check, the entry is
dropped and the list read afresh. The cache can cost a send a second try, never let through a
word that a fresh read would refuse (as application/messages.py's RecipientCache does).
"""

from __future__ import annotations

import time

from application.context import CommandContext
from application.errors import NotFound
from application.ports import EventStore, StreamWrite
from application.streams import handle, load, save
from domain.sensitive_words import SensitiveWords, WordList, sensitive_words_stream_id

STREAM_TYPE = "sensitive_words"


class KnownWords:
    """An account's words as read at ``version`` of their stream (0: none were ever set)."""

    def __init__(self, tenant: str, words: WordList, version: int) -> None:
        self.tenant = tenant
        self.words = words
        self.version = version

    def refuse(self, content: str) -> None:
        """InvalidValue (field content) naming the first word ``content`` holds."""
        self.words.refuse(content)

    def hold(self) -> StreamWrite:
        """What a send appends so that it commits only if the list is still this one."""
        return StreamWrite(sensitive_words_stream_id(self.tenant), STREAM_TYPE, [], self.version)


async def read_words(store: EventStore, tenant: str) -> KnownWords:
    try:
        words, _ = await load(store, sensitive_words_stream_id(tenant), tenant=tenant)
    except NotFound:
        return KnownWords(tenant, WordList(()), 0)
    assert isinstance(words, SensitiveWords)
    return KnownWords(tenant, words.word_list(), words.version)


class SensitiveWordsCache:
    """Each account's words, read from the log at most once a ``ttl_seconds`` while unchanged."""

    def __init__(self, ttl_seconds: float = 60.0, limit: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._limit = limit
        self._entries: dict[str, tuple[float, KnownWords]] = {}

    async def of(self, store: EventStore, tenant: str) -> KnownWords:
        hit = self._entries.get(tenant)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        known = await read_words(store, tenant)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[tenant] = (time.monotonic() + self._ttl, known)
        return known

    def forget(self, tenant: str) -> None:
        self._entries.pop(tenant, None)


async def set_sensitive_words(
    words: list[str], ctx: CommandContext, *, store: EventStore
) -> tuple[SensitiveWords, int]:
    """The account's list becomes ``words``; the list and the position a reader can wait for."""
    stream_id = sensitive_words_stream_id(ctx.tenant)

    async def read() -> tuple[SensitiveWords | None, int]:
        try:
            return await load(store, stream_id, tenant=ctx.tenant)
        except NotFound:
            return None, 0

    async def decide(current: SensitiveWords | None) -> SensitiveWords:
        if current is None:
            return SensitiveWords.start(tenant=ctx.tenant, words=words)
        current.replace(words)
        return current

    async def append(_: SensitiveWords | None, decided: SensitiveWords) -> int | None:
        return await save(store, decided, STREAM_TYPE, ctx)

    handled = await handle(
        store, stream_id, decide, ctx, stream_type=STREAM_TYPE, load_stream=read, append=append
    )
    return handled.decision, handled.position
