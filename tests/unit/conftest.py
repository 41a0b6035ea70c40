"""Fixtures of the handler tests: in-memory fakes of the ports, and creators' contexts."""

from __future__ import annotations

import pytest

from application.context import CommandContext
from tests.support.fakes import CountingIds, InMemoryEventStore, creator_context


@pytest.fixture
def store() -> InMemoryEventStore:
    return InMemoryEventStore()


@pytest.fixture
def ids() -> CountingIds:
    return CountingIds()


@pytest.fixture
def alice() -> CommandContext:
    return creator_context()


@pytest.fixture
def bob() -> CommandContext:
    return creator_context()
