"""The event store: the only code that reads or writes the ``events`` table.

Split as the eventsourcing library splits its persistence: ``mapper`` (pure: event <-> row,
stable type names, upcasting, personal fields revealed), ``recorder`` (every statement on
``events``; the append is composed from the fragments of ``append_sql`` by ``composition``),
``sealing`` (an append's personal fields sealed, with the keys it needs), and ``store``
(``PostgresEventStore``, the ``EventStore`` port, composing them). ``notifications`` numbers
the sealed log 1, 2, 3... in commit order for eventsourcing's readers.
"""

from adapters.postgres.event_store.mapper import from_text, to_recorded
from adapters.postgres.event_store.store import PostgresEventStore

__all__ = ["PostgresEventStore", "from_text", "to_recorded"]
