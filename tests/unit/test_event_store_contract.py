"""The EventStore contract (tests/support/event_store_contract.py) on the in-memory store that
the handler tests use: it must behave as the Postgres store does."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.support.event_store_contract import Backend, EventStoreContract, Outboxed, outboxed
from tests.support.fakes import InMemoryEventStore


class InMemoryBackend(Backend):
    def __init__(self) -> None:
        self.store = self._store = InMemoryEventStore()

    async def outbox(self, message_ids: Sequence[str], subject: str | None) -> list[Outboxed]:
        return [outboxed(entry) for entry in self._store.outbox if entry.message_id in message_ids]


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return InMemoryBackend()
