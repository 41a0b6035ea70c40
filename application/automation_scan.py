"""The time-based triggers, found by scanning read models rather than by an event:

- ``inactive`` (days N): the fan's last activity is N days old or more. Activity is what the
  churn figures count (projections/analytics_cohorts.py): a message from the fan or a purchase;
  being created counts as the first.
- ``noReply`` (hours N): the account's last message to the fan is N hours old or more and the
  fan has written nothing since (the conversation's last message is the account's).
- ``atRisk``: the account's latest churn model scores the fan at risk (``AT_RISK``, the
  campaigns' segment). Its "spell" is the model that scored it (named by when it was trained):
  a retrain that scores the fan at risk again is a new trigger, which the re-entry rule allows
  or not. A fan deleted or erased since the scoring is never enrolled: the churn projector
  deletes its score, and the fan's stream is looked at before enrolling, in case it lags.

Each spell of silence enrols a fan at most once: the trigger is named by when the spell began,
so a scan done again (after a crash, or by a second worker) finds the run it started. A new
spell (the fan wrote, then went quiet again) is a new trigger, which the re-entry rule allows
or not. The scan walks each sequence's candidates in the order their spells began, from a
place it keeps, a page at a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from application.enrolments import enrol
from application.errors import NotFound
from application.ports import EventStore
from application.streams import load
from domain.fan import fan_stream_id
from domain.sequence import Sequence

SCANNED = frozenset({"inactive", "noReply", "atRisk"})


class Silent(msgspec.Struct, frozen=True):
    fan_id: int
    since: datetime  # the fan's last activity, the account's last message, or the scoring
    key: int  # the row's id, to keep the scan's place among equal times


class SilentFans(Protocol):
    async def scanned_sequences(self) -> list[tuple[int, str]]:
        """(sequence id, tenant) of the active sequences with a time-based trigger."""
        ...

    async def silent(
        self, sequence_id: int, tenant: str, trigger: str, before: datetime, limit: int
    ) -> list[Silent]:
        """Fans silent since before ``before``, after the scan's place, in order."""
        ...

    async def advance(self, sequence_id: int, since: datetime, key: int) -> None: ...


def silence(sequence: Sequence) -> timedelta:
    trigger = sequence.trigger
    if trigger.type == "inactive":
        return timedelta(days=trigger.days or 0)
    if trigger.type == "atRisk":
        return timedelta(0)  # at risk as soon as scored
    return timedelta(hours=trigger.hours or 0)


async def _live(store: EventStore, tenant: str, fan_id: int) -> bool:
    try:
        fan, _ = await load(store, fan_stream_id(fan_id), tenant=tenant)
    except NotFound:
        return False
    return not fan.deleted


async def scan_sequence(
    sequence: Sequence,
    now: datetime,
    *,
    store: EventStore,
    fans: SilentFans,
    limit: int = 500,
) -> list[str]:
    """Enrol the next page of the sequence's silent fans; the runs it started."""
    if sequence.status != "active" or sequence.trigger.type not in SCANNED:
        return []
    trigger = sequence.trigger.type
    page = await fans.silent(
        sequence.sequence_id, sequence.tenant, trigger, now - silence(sequence), limit
    )
    started = []
    for fan in page:
        if trigger == "atRisk" and not await _live(store, sequence.tenant, fan.fan_id):
            continue
        spell = f"{trigger}:{fan.since.isoformat()}"
        enrolment = await enrol(sequence, fan.fan_id, spell, now, store=store)
        if enrolment is not None:
            started.append(enrolment.id)
    if page:
        await fans.advance(sequence.sequence_id, page[-1].since, page[-1].key)
    return started
