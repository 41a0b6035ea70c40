"""The dead-letter queues as a person sees them: which messages died there, and redriving them.

A dead letter is a copy of a message's queue body (application/messages.py ``outbox_entry``):
its message id, tenant and the attempt it carried. Redriving one never sends it from the
dead-letter queue: it runs the domain's retry (``retry_message``), which records the retry in
the log and writes a new outbox row, and then deletes the dead letter. So the log decides,
and a message id is sent at most once, whatever happens:

- the message's attempt is past the one the dead letter carried: it was retried since (by a
  person, or by a redrive that stopped before its delete). The dead letter is only deleted.
- it failed: retried, then the dead letter deleted. Two redrives at once both try the retry;
  the event store lets one append, and the other finds the message queued again (cleared).
- it shows no outcome (queued or dispatched: its last sender died before recording one, and
  the sender's sweep has not seen it yet): recorded failed, as the sweep would, and retried,
  in one append.
- sent, read, held or cancelled: nothing to send. The dead letter is only deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec

from application.context import CommandContext
from application.errors import NotFound
from application.messages import MessageCommand, retry_message
from application.ports import EventStore
from application.queue import QUEUES, MessageQueue, QueueName
from domain.errors import IllegalState, InvalidValue
from domain.message import HIGH_PRIORITY, canonical_message_id

MAX_LISTED = 1000  # per queue: a dead-letter queue this deep wants the CLI, not a page


class DeadLetterEntry(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    tenant: str
    queue: QueueName
    attempt: int  # the message's attempt this copy carried (1 for the first send)
    receive_count: int  # tries at the platform before the queue gave up on it
    sent_at: datetime | None  # when this copy went onto its queue
    receipt: str


RedriveResult = Literal["requeued", "cleared"]


class Redriven(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    tenant: str
    result: RedriveResult  # requeued: on its way again; cleared: nothing to send
    position: int | None = None


class _Body(msgspec.Struct):
    messageId: str  # noqa: N815 - the queue body's own name
    tenant: str
    attempt: int = 1


_decode = msgspec.json.Decoder(_Body).decode


async def dead_letters(
    queue: MessageQueue, *, tenant: str | None = None, limit: int = MAX_LISTED
) -> list[DeadLetterEntry]:
    """Every dead letter (of ``tenant`` only, unless None), high queue first, oldest first.
    A body that is not one of ours (a copy cannot be read) is left out: nothing to redrive."""
    entries = []
    for name in QUEUES:
        for dead in await queue.peek_dead_letters(name, limit=limit):
            try:
                body = _decode(dead.body)
                message_id = canonical_message_id(body.messageId)
            except (msgspec.DecodeError, InvalidValue):
                continue
            if tenant is not None and body.tenant != tenant:
                continue
            entries.append(
                DeadLetterEntry(
                    message_id=message_id,
                    tenant=body.tenant,
                    queue=name,
                    attempt=body.attempt,
                    receive_count=dead.receive_count,
                    sent_at=dead.sent_at,
                    receipt=dead.receipt,
                )
            )
    return sorted(entries, key=lambda e: (e.queue != "high", e.sent_at is None, e.sent_at))


async def redrive(
    queue: MessageQueue,
    store: EventStore,
    *,
    actor: str,
    correlation_id: str,
    tenant: str | None = None,
    message_ids: Sequence[str] | None = None,
    high_priority_from: int = HIGH_PRIORITY,
) -> list[Redriven]:
    """Redrive the dead letters of ``tenant`` (every tenant's if None), only those of
    ``message_ids`` if given; one result per message id found in a dead-letter queue."""
    wanted = None if message_ids is None else {_canonical(i) for i in message_ids}
    by_message: dict[tuple[str, str], list[DeadLetterEntry]] = {}
    for entry in await dead_letters(queue, tenant=tenant):
        if wanted is None or entry.message_id in wanted:
            by_message.setdefault((entry.tenant, entry.message_id), []).append(entry)
    results = []
    for (owner, message_id), entries in by_message.items():
        ctx = CommandContext(tenant=owner, actor=actor, correlation_id=correlation_id)
        result = await _redrive_one(message_id, entries, ctx, store, high_priority_from)
        # Only after the log has decided: a stop before this leaves a dead letter that the
        # next redrive clears (the message's attempt has moved past it).
        for name in QUEUES:
            receipts = [entry.receipt for entry in entries if entry.queue == name]
            if receipts:
                await queue.delete(name, receipts)
        results.append(result)
    return results


async def _redrive_one(
    message_id: str,
    entries: list[DeadLetterEntry],
    ctx: CommandContext,
    store: EventStore,
    high_priority_from: int,
) -> Redriven:
    receives = max(entry.receive_count for entry in entries)
    try:
        changed = await retry_message(
            MessageCommand(message_id=message_id),
            ctx,
            store=store,
            high_priority_from=high_priority_from,
            at_attempt=max(entry.attempt for entry in entries),
            unsettled_reason=f"dead-lettered after {receives} receives",
        )
    except (NotFound, IllegalState):
        # Retried since, sent, held or cancelled, or no longer in the log's reach (erased,
        # or not this tenant's): nothing to send for this dead letter.
        return Redriven(message_id=message_id, tenant=ctx.tenant, result="cleared")
    return Redriven(
        message_id=message_id, tenant=ctx.tenant, result="requeued", position=changed.position
    )


def _canonical(message_id: str) -> str:
    try:
        return canonical_message_id(message_id)
    except InvalidValue:
        raise InvalidValue("message_ids", f"{message_id[:80]!r} is not a message id") from None
