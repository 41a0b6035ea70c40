"""Stable names for every stored event type.

The names are a contract with the stored log: never rename one, never reuse one. A Python class
may move or be renamed freely as long as its entry here keeps the same name. ``SCHEMA_VERSIONS``
records the current shape of each event; older shapes are upcast on read (see the event store).
"""

from __future__ import annotations

from domain.base import DomainEvent
from domain.fan import Fan

EVENT_TYPES: dict[str, type[DomainEvent]] = {
    "FanCreated": Fan.Created,
    "FanUpdated": Fan.Updated,
    "FanDeleted": Fan.Deleted,
}

SCHEMA_VERSIONS: dict[str, int] = dict.fromkeys(EVENT_TYPES, 1)

EVENT_NAMES: dict[type[DomainEvent], str] = {cls: name for name, cls in EVENT_TYPES.items()}
