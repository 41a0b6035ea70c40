"""The EventStore contract (tests/support/event_store_contract.py) on Postgres, wired as
adapters/bootstrap.py wires it, with personal data encrypted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from adapters import bootstrap
from adapters.postgres.personal_data import PII
from tests.support import databases
from tests.support.event_store_contract import Backend, EventStoreContract, Outboxed
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(60)


class PostgresBackend(Backend):
    def __init__(self, container: bootstrap.Container) -> None:
        self.store = container.events
        self._container = container

    async def outbox(self, message_ids: Sequence[str], subject: str | None) -> list[Outboxed]:
        pool = self._container.pool
        rows = await pool.fetch(
            "SELECT queue, message_id, body, attributes, stream_version FROM outbox"
            " WHERE message_id = ANY($1::text[]) ORDER BY id",
            list(message_ids),
        )
        found = []
        for row in rows:
            body = json.loads(row["body"])
            personal: dict[str, Any] = {}
            if PII in body:
                assert subject is not None, "sealed personal fields need their subject's key"
                personal = await self._container.personal.open_body(pool, body, subject)
                del body[PII]
            attributes = row["attributes"]
            found.append(
                Outboxed(
                    queue=row["queue"],
                    message_id=row["message_id"],
                    stream_version=row["stream_version"],
                    body=body,
                    personal=personal,
                    attributes=json.loads(attributes)
                    if isinstance(attributes, str)
                    else attributes,
                )
            )
        return found


@pytest.fixture(scope="module")
async def contract_container(
    test_server: databases.TestServer,
) -> AsyncIterator[bootstrap.Container]:
    """One database for the module: each test of the contract writes streams of its own."""
    container = await bootstrap.build(settings_for(await test_server.clone()))
    assert container.personal.keys is not None, "personal data is encrypted"
    yield container
    await container.close()


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def backend(self, contract_container: bootstrap.Container) -> Backend:
        return PostgresBackend(contract_container)
