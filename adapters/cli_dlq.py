"""`crm dlq list|redrive`: the dead-letter queues from the shell, as an operator sees them.

The same use cases as GET /api/onlyfans/dlq and POST /api/onlyfans/dlq/redrive
(application/dead_letters.py), over every account unless ``--tenant`` names one: a redrive
puts each message back through the domain's retry, once, and removes its dead letter.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from adapters.bootstrap import Container
from adapters.http.dlq import describe
from application import dead_letters


async def list_command(
    container: Container, *, tenant: str | None = None, out: TextIO = sys.stdout
) -> int:
    """Prints one line per dead letter; returns how many there are."""
    entries = await dead_letters.dead_letters(container.queue, tenant=tenant)
    described = await describe(container.messaging, entries, with_tenant=True)
    print(
        f"{'message':<36} {'tenant':<24} {'queue':<6} {'tries':>5} {'status':<10}"
        f" {'first failure':<25} {'last failure':<25} reason",
        file=out,
    )
    for d in described:
        print(
            f"{d.message_id:<36} {(d.tenant or '')[:24]:<24} {d.queue:<6} {d.attempts:>5}"
            f" {d.status or '-':<10} {_at(d.first_failure_at):<25} {_at(d.last_failure_at):<25}"
            f" {d.reason}",
            file=out,
        )
    print(f"{len(described)} dead-lettered", file=out)
    return len(described)


async def redrive_command(
    container: Container,
    *,
    actor: str,
    tenant: str | None = None,
    message_ids: Sequence[str] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Redrives; prints each message's result; returns how many were requeued."""
    results = await dead_letters.redrive(
        container.queue,
        container.events,
        actor=actor,
        correlation_id=f"cli-{uuid.uuid4().hex}",
        tenant=tenant,
        message_ids=message_ids,
        high_priority_from=container.settings.high_priority_from,
    )
    for r in results:
        print(f"{r.message_id} {r.tenant} {r.result}", file=out)
    requeued = sum(1 for r in results if r.result == "requeued")
    print(f"{requeued} requeued, {len(results) - requeued} cleared", file=out)
    return requeued


def _at(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"
