"""Event base classes for aggregates whose ids are strings such as ``fan-42``.

eventsourcing's own ``Aggregate`` uses UUID ids; our streams are named after integer ids
allocated from Postgres sequences, so aggregates derive from ``BaseAggregate[str]`` with these
event bases. ``MetaDomainEvent`` turns every subclass into a frozen dataclass.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import CanInitAggregate, CanMutateAggregate, MetaDomainEvent


class DomainEvent(CanMutateAggregate[str], metaclass=MetaDomainEvent):
    originator_id: str
    originator_version: int
    timestamp: datetime


class AggregateCreated(CanInitAggregate[str], DomainEvent):
    # A Python path, needed by eventsourcing to rebuild the aggregate; never stored: the event
    # store writes the stable event type name instead and fills this in again on read.
    originator_topic: str
