"""Patreon webhooks: what each trigger does to the member's fan, once per webhook.

Every trigger carries the member as it now is, and every trigger upserts its fan through the
import's batch code (``prepare``: matched by the Patreon user id, created or updated, never
twice), in one transaction with the webhook's receipt, so a replayed webhook changes nothing:

- ``members:create`` / ``members:update``: the fan takes the member's values.
- ``members:pledge:create`` / ``members:pledge:update``: the same, and the pledge's amount
  (``currently_entitled_amount_cents``) is recorded as revenue on the fan (FanPurchaseRecorded),
  once per webhook.
- ``members:pledge:delete``: the member is a former patron (its status tag says so).
- ``members:delete``: the member was removed. The fan is kept and tagged ``removed member``,
  not deleted: in fancrm a deleted fan stays deleted whatever an import or a sync later says
  (application/imports.py), while a person removed from a campaign may join it again; and the
  creator's notes and history of that fan are theirs to keep or delete.

A webhook never sets the fan's value (lifetime support): Patreon's total is set by the member
sync, which a pledge's revenue then joins until the next sync says the total again.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, Protocol, get_args

import msgspec

from application.context import CommandContext
from application.import_batch import match_keys, prepare
from application.imports import FanRow, ImportStore, ImportUnitOfWork
from application.patreon import PatreonMember, member_row
from application.ports import StreamWrite
from application.streams import retry_on_conflict
from domain.fan import Fan
from domain.import_job import ImportJob

Trigger = Literal[
    "members:create",
    "members:update",
    "members:delete",
    "members:pledge:create",
    "members:pledge:update",
    "members:pledge:delete",
]
TRIGGERS: tuple[str, ...] = get_args(Trigger)
_STATUS_OVERRIDE = {"members:pledge:delete": "former_patron", "members:delete": "removed member"}
_REVENUE = ("members:pledge:create", "members:pledge:update")


class WebhookReceipts(Protocol):
    async def claim(self, uow: ImportUnitOfWork, tenant: str, key: str) -> None:
        """Record ``key`` in ``uow``'s transaction; AlreadyProcessed if it already was."""
        ...


class Applied(msgspec.Struct, frozen=True):
    fan_id: int | None
    revenue_cents: int


def webhook_key(trigger: str, raw: bytes) -> str:
    """What names one webhook: Patreon sends no id, and retries the same bytes, so the digest
    of the trigger and the body is stable across its retries and distinct between events."""
    return "patreon:" + hashlib.sha256(trigger.encode() + b"\n" + raw).hexdigest()


async def handle_patreon_webhook(
    trigger: Trigger,
    member: PatreonMember,
    key: str,
    ctx: CommandContext,
    *,
    imports: ImportStore,
    receipts: WebhookReceipts,
) -> Applied:
    row = member_row(member, 2, with_value=False, status=_STATUS_OVERRIDE.get(trigger))
    amount = (member.currently_entitled_amount_cents or 0) if trigger in _REVENUE else 0

    async def attempt() -> Applied:
        async with imports.batch(ctx.tenant) as uow:
            await receipts.claim(uow, ctx.tenant, key)
            if trigger == "members:delete" and not await uow.find(match_keys(row)[:1]):
                return Applied(None, 0)  # a member never known here: nothing to mark
            writes, fan_id = await _upsert(uow, row, ctx)
            if amount > 0 and fan_id is not None:
                writes = await _with_revenue(uow, writes, fan_id, amount, key)
            if writes:
                await uow.append(writes, ctx)
        return Applied(fan_id, amount if fan_id is not None else 0)

    return await retry_on_conflict(attempt)


async def _upsert(
    uow: ImportUnitOfWork, row: FanRow, ctx: CommandContext
) -> tuple[list[StreamWrite], int | None]:
    # A job of one row, never saved: ``prepare`` records each batch on a job, and a webhook
    # is no import (it would list one job per webhook). Its write (the last) is dropped.
    job = ImportJob.start(job_id=key_job(row), tenant=ctx.tenant, file_name="", source="patreon")
    writes = (await prepare(uow, [row], job, ctx))[:-1]
    if job.error_count:
        # The member's values break a fan rule (an email Patreon allows and fancrm does not,
        # say): the webhook is acknowledged and its receipt kept, as Patreon would otherwise
        # retry it forever; nothing is changed.
        return [], None
    found = await uow.find(match_keys(row)[:1])
    if found:
        return writes, next(iter(found.values())).fan_id
    for write in writes:
        first = write.events[0] if write.events else None
        if isinstance(first, Fan.Created):
            return writes, first.fan_id
    return writes, None


def key_job(row: FanRow) -> str:
    return f"patreon-webhook-{row.platform_id}"


async def _with_revenue(
    uow: ImportUnitOfWork, writes: list[StreamWrite], fan_id: int, amount: int, key: str
) -> list[StreamWrite]:
    """``writes`` with the pledge recorded on the fan, after whatever ``writes`` do to it."""
    stream = Fan.create_id(fan_id)
    mine = next((w for w in writes if w.stream_id == stream), None)
    if mine is not None and isinstance(mine.events[0], Fan.Created):
        fan = None
        version = 0
    else:
        fan = (await uow.load_fans([fan_id])).get(fan_id)
        if fan is None:
            return writes  # not this tenant's fan
        version = fan.version
    aggregate: Any = fan
    for event in mine.events if mine is not None else ():
        aggregate = event.mutate(aggregate)
    fan = aggregate
    assert isinstance(fan, Fan)
    fan.collect_events()  # what ``writes`` already hold
    fan.record_purchase(amount, key)
    purchase = fan.collect_events()
    others = [w for w in writes if w is not mine]
    events = [*(mine.events if mine is not None else ()), *purchase]
    start = mine.expected_version if mine is not None else version
    return [*others, StreamWrite(stream, "fan", events, expected_version=start)]
