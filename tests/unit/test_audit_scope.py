"""Who may read which tenant's history, and time travel in a stream, against in-memory fakes."""

from __future__ import annotations

from datetime import datetime

import pytest

from application.audit import AuditFilter, AuditScope, events_query, scope_for, stream_as_of
from application.context import CommandContext
from application.errors import Forbidden, NotFound
from application.fans import CreateFan, UpdateFan, create_fan, update_fan
from application.permissions import permissions_of
from domain.errors import InvalidValue
from tests.support.fakes import CountingIds, InMemoryEventStore

CREATOR = permissions_of("creator")
AUDITOR = permissions_of("auditor")
ADMIN = permissions_of("admin")
ALICE = CommandContext(tenant="alice", actor="apikey:a", correlation_id="c-1")


def test_a_creator_reads_only_its_own_tenant() -> None:
    scope = scope_for(CREATOR, "alice", frozenset({"bob"}))
    assert scope.allows("alice")
    assert not scope.allows("bob")


def test_an_auditor_reads_only_what_it_was_granted() -> None:
    scope = scope_for(AUDITOR, "auditor-1", frozenset({"alice", "bob"}))
    assert scope.allows("alice")
    assert scope.allows("bob")
    assert not scope.allows("carol")


def test_an_auditor_granted_nothing_reads_its_own_users_tenant() -> None:
    scope = scope_for(AUDITOR, "alice", frozenset())
    assert scope == AuditScope(frozenset({"alice"}))


def test_an_auditor_granted_every_tenant_and_an_admin_read_all() -> None:
    assert scope_for(AUDITOR, "a", frozenset({"*"})) == AuditScope(None)
    assert scope_for(ADMIN, "a", frozenset()) == AuditScope(None)


def test_an_unknown_role_reads_nothing() -> None:
    with pytest.raises(Forbidden):
        scope_for(permissions_of("guest"), "a", frozenset())


def test_filtering_on_a_tenant_out_of_scope_is_refused_not_emptied() -> None:
    scope = scope_for(CREATOR, "alice", frozenset())
    with pytest.raises(Forbidden):
        events_query(scope, AuditFilter(tenant="bob"), limit=10, cursor=None)
    narrowed = events_query(scope, AuditFilter(tenant="alice"), limit=10, cursor=None)
    assert narrowed.scope == AuditScope(frozenset({"alice"}))


@pytest.mark.parametrize("limit", [0, -1, 501])
def test_page_sizes_are_bounded(limit: int) -> None:
    with pytest.raises(InvalidValue):
        events_query(AuditScope(None), AuditFilter(), limit=limit, cursor=None)


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(InvalidValue):
        events_query(
            AuditScope(None), AuditFilter(since=datetime(2026, 1, 1)), limit=10, cursor=None
        )


async def test_time_travel_replays_the_stream_up_to_the_version_asked() -> None:
    store = InMemoryEventStore()
    created = await create_fan(CreateFan(name="Ann"), ALICE, store=store, ids=CountingIds())
    fan_id = created.fan.fan_id
    await update_fan(UpdateFan(fan_id=fan_id, changes={"name": "Ann 2"}), ALICE, store=store)
    stream = f"fan-{fan_id}"
    alice = scope_for(CREATOR, "alice", frozenset())

    past = await stream_as_of(store, stream, alice, up_to_version=1)
    assert past.state.name == "Ann"
    assert [e.version for e in past.events] == [1]
    now = await stream_as_of(store, stream, alice)
    assert now.state.name == "Ann 2"
    before = await stream_as_of(store, stream, alice, up_to_version=0)
    assert before.state is None
    assert before.tenant == "alice"


async def test_another_tenants_stream_is_reported_missing() -> None:
    store = InMemoryEventStore()
    created = await create_fan(CreateFan(name="Ann"), ALICE, store=store, ids=CountingIds())
    with pytest.raises(NotFound):
        await stream_as_of(
            store, f"fan-{created.fan.fan_id}", scope_for(CREATOR, "bob", frozenset())
        )
    with pytest.raises(NotFound):
        await stream_as_of(store, "fan-424242", AuditScope(None))
