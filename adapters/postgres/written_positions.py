"""The positions a request committed, collected while it runs (read-your-writes by API key:
adapters/postgres/key_writes.py records the newest before the response starts).

The event store and the import note each committed append with ``note_written``; the HTTP
layer opens ``collecting`` around a request. Apart from key_writes.py, which asks the event
store's questions, so that the store can note its writes without importing it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# A list, not a value set per append: appends may run in tasks the request spawns, whose
# contexts are copies; they all share the one list.
_written: ContextVar[list[int] | None] = ContextVar("written_positions", default=None)


def note_written(position: int) -> None:
    """A transaction that wrote ``position`` (its last event) has committed."""
    written = _written.get()
    if written is not None:
        written.append(position)


@contextmanager
def collecting() -> Iterator[list[int]]:
    """Collect what is committed within (a request): the positions ``note_written`` saw."""
    written: list[int] = []
    token = _written.set(written)
    try:
        yield written
    finally:
        _written.reset(token)
