"""The SensitiveWords aggregate: the words an account's messages must never contain.

One stream per account, holding the whole list; every change replaces it. A send is refused
if its content holds one of the words, case-insensitively, as a whole word (``cash`` refuses
"Cash me" but not "cashew"). A workspace-wide list would be a second stream of the same kind,
named after the workspace, whose words a send checks as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import InvalidValue

MAX_WORDS = 500
MAX_WORD = 100


def sensitive_words_stream_id(tenant: str) -> str:
    return f"sensitive-words-{tenant}"


def normalise_words(words: Iterable[object]) -> tuple[str, ...]:
    """Trimmed, each once whatever its case (the first spelling kept), in the order given."""
    seen: set[str] = set()
    result = []
    for word in words:
        text = word.strip() if isinstance(word, str) else ""
        if not text or len(text) > MAX_WORD or "\x00" in text:
            raise InvalidValue("words", f"each word must be 1-{MAX_WORD} characters, without NUL")
        if text.casefold() not in seen:
            seen.add(text.casefold())
            result.append(text)
    if len(result) > MAX_WORDS:
        raise InvalidValue("words", f"at most {MAX_WORDS} words")
    return tuple(result)


class WordList:
    """Words compiled once into one pattern, to check content against."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(words)
        self._by_fold = {word.casefold(): word for word in self.words}
        # Longest first, so that "cash app" is named before "cash"; lookarounds rather than
        # \b so that a word starting or ending with punctuation still matches whole.
        alternatives = "|".join(
            re.escape(word) for word in sorted(self.words, key=len, reverse=True)
        )
        self._pattern = (
            re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if self.words else None
        )

    def first_in(self, text: str) -> str | None:
        """The listed word ``text`` holds first, as listed; None if it holds none."""
        if self._pattern is None:
            return None
        found = self._pattern.search(text)
        if found is None:
            return None
        return self._by_fold.get(found.group(0).casefold(), found.group(0))

    def refuse(self, content: str) -> None:
        word = self.first_in(content)
        if word is not None:
            raise InvalidValue("content", f"contains the sensitive word {word!r}")


class SensitiveWords(BaseAggregate[str]):
    @staticmethod
    def create_id(tenant: str) -> str:
        return sensitive_words_stream_id(tenant)

    class Event(DomainEvent):
        pass

    class Created(Event, AggregateCreated):
        tenant: str
        words: tuple[str, ...]

    class Replaced(Event):
        words: tuple[str, ...]

    @classmethod
    def start(cls, *, tenant: str, words: Iterable[object]) -> SensitiveWords:
        return cls(tenant=tenant, words=normalise_words(words))

    @event(Created)
    def __init__(self, tenant: str, words: tuple[str, ...]) -> None:
        self.tenant = tenant
        self.words = tuple(words)

    def replace(self, words: Iterable[object]) -> bool:
        """The list becomes ``words``; records nothing if it is the same list."""
        new = normalise_words(words)
        if new == self.words:
            return False
        self._replaced(words=new)
        return True

    @event(Replaced)
    def _replaced(self, words: tuple[str, ...]) -> None:
        self.words = tuple(words)

    def word_list(self) -> WordList:
        return WordList(self.words)
