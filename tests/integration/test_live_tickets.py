"""Live stream tickets in Postgres: the principal they carry, single use, short life."""

from __future__ import annotations

import asyncio
import uuid

from adapters import bootstrap
from adapters.postgres.api_keys import Principal
from adapters.postgres.live_tickets import issue_ticket, redeem_ticket
from application.permissions import Permission


def a_member() -> Principal:
    return Principal(
        key_id=uuid.uuid4().hex[:8],
        user_id="acct-2",
        role="chatter",
        workspace_id="user-owner",
        member_id="member-1",
        permissions=frozenset({Permission.READ, Permission.SEND}),
        accounts=("acct-2",),
    )


async def test_a_ticket_carries_its_principal_and_works_once(
    container: bootstrap.Container,
) -> None:
    principal = a_member()
    ticket = await issue_ticket(container.pool, principal)
    assert await redeem_ticket(container.pool, ticket) == principal
    assert await redeem_ticket(container.pool, ticket) is None


async def test_two_processes_redeeming_one_ticket_at_once_get_it_once(
    container: bootstrap.Container,
) -> None:
    ticket = await issue_ticket(container.pool, a_member())
    found = await asyncio.gather(*(redeem_ticket(container.pool, ticket) for _ in range(5)))
    assert sum(principal is not None for principal in found) == 1


async def test_an_expired_unknown_or_oversized_ticket_opens_nothing(
    container: bootstrap.Container,
) -> None:
    expired = await issue_ticket(container.pool, a_member(), seconds=0)
    assert await redeem_ticket(container.pool, expired) is None
    assert await redeem_ticket(container.pool, "not-a-ticket") is None
    assert await redeem_ticket(container.pool, "x" * 10_000) is None
    assert await redeem_ticket(container.pool, "") is None
    # Only a hash of the ticket is kept.
    ticket = await issue_ticket(container.pool, a_member())
    stored = await container.pool.fetchval(
        "SELECT count(*) FROM live_tickets WHERE ticket_hash = $1::text::bytea", ticket
    )
    assert stored == 0
