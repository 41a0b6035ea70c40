"""The event store's door for a caller that appends inside a transaction of its own.

An import batch claims its index entries in the very statement that appends its fans'
events, and finds fans whose stream has not moved since it last saw them: it composes its
own fragments with the recorder's one append (``Fragment``, ``SEPARATOR``-joined texts), on
its own connection. This module is all of the recorder such a caller may use; anything else
goes through ``PostgresEventStore`` or a named question (import-linter's contract on the
recorder keeps it so).
"""

from adapters.postgres.event_store.append_sql import SEPARATOR
from adapters.postgres.event_store.composition import Fragment
from adapters.postgres.event_store.recorder import (
    KeyChanges,
    append_unchecked,
    event_arguments,
    is_at_version,
    key_arguments,
)
from adapters.postgres.event_store.store import load_streams_on

__all__ = [
    "SEPARATOR",
    "Fragment",
    "KeyChanges",
    "append_unchecked",
    "event_arguments",
    "is_at_version",
    "key_arguments",
    "load_streams_on",
]
