"""One fan's run through a sequence: the Enrolment aggregate.

    (none) ──enrol──► active ──step sent…──► completed      (after the last step)
                        └──exit──► exited                   (an exit rule, deletion, re-entry)

Its stream is named by (sequence, fan, entry number), so "a fan enters once" is the
optimistic-concurrency check on a new stream: two workers that both see the trigger both try
to append the first event at version 0, and one of them fails. A later entry (re-entry) is
the next number. ``StepSent`` commits in one transaction with the message it queued, at the
enrolment's expected version: a step is recorded and queued together, once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import IllegalState

Status = Literal["active", "exited", "completed"]
EXIT_REASONS = frozenset(
    {
        *("replied", "purchased", "tagAdded", "tagRemoved", "deleted", "erased"),
        *("reentered", "archived", "undeliverable"),
    }
)


def enrolment_stream_id(sequence_id: int, fan_id: int, entry: int) -> str:
    return f"enrolment-{sequence_id}-{fan_id}-{entry}"


class Enrolment(BaseAggregate[str]):
    @staticmethod
    def create_id(sequence_id: int, fan_id: int, entry: int) -> str:
        return enrolment_stream_id(sequence_id, fan_id, entry)

    class Event(DomainEvent):
        pass

    class Enrolled(Event, AggregateCreated):
        sequence_id: int
        fan_id: int
        tenant: str
        entry: int
        # What enrolled the fan (the triggering event's id, or the spell of inactivity): a
        # trigger processed again after a crash finds its own enrolment and stops there.
        trigger: str
        enrolled_at: datetime
        due_at: datetime  # when step 0 falls due

    class StepSent(Event):
        step: int
        message_id: str
        sent_at: datetime
        next_due: datetime | None  # None: that was the last step
        variant: int | None = None  # the step's A/B test variant the fan was sent

    class Exited(Event):
        reason: str
        at: datetime

    class Completed(Event):
        at: datetime

    @classmethod
    def enrol(
        cls,
        *,
        sequence_id: int,
        fan_id: int,
        tenant: str,
        entry: int,
        trigger: str,
        now: datetime,
        first_due: datetime,
    ) -> Enrolment:
        if entry < 1:
            raise IllegalState("entries are numbered from 1")
        return cls(
            sequence_id=sequence_id,
            fan_id=fan_id,
            tenant=tenant,
            entry=entry,
            trigger=trigger,
            enrolled_at=now,
            due_at=first_due,
        )

    @event(Enrolled)
    def __init__(
        self,
        sequence_id: int,
        fan_id: int,
        tenant: str,
        entry: int,
        trigger: str,
        enrolled_at: datetime,
        due_at: datetime,
    ) -> None:
        self.sequence_id = sequence_id
        self.fan_id = fan_id
        self.tenant = tenant
        self.entry = entry
        self.trigger = trigger
        self.due_at: datetime | None = due_at
        self.next_step = 0
        self.status: Status = "active"
        self.exit_reason: str | None = None

    def due(self, now: datetime) -> bool:
        return self.status == "active" and self.due_at is not None and self.due_at <= now

    def record_step(
        self,
        *,
        step: int,
        message_id: str,
        now: datetime,
        next_due: datetime | None,
        variant: int | None = None,
    ) -> None:
        """The step's message is queued (in the same append); ``next_due`` None ends the run."""
        if not self.due(now):
            raise IllegalState(f"{self.id} has no step due")
        if step != self.next_step:
            raise IllegalState(f"{self.id} is at step {self.next_step}, not {step}")
        self._step_sent(
            step=step, message_id=message_id, sent_at=now, next_due=next_due, variant=variant
        )
        if next_due is None:
            self._completed(at=now)

    @event(StepSent)
    def _step_sent(
        self,
        step: int,
        message_id: str,
        sent_at: datetime,
        next_due: datetime | None,
        variant: int | None,
    ) -> None:
        self.next_step = step + 1
        self.due_at = next_due

    @event(Completed)
    def _completed(self, at: datetime) -> None:
        self.status = "completed"
        self.due_at = None

    def finish(self, now: datetime) -> None:
        """The sequence has no step left for this run (its steps were cut since it began)."""
        if self.status != "active":
            raise IllegalState(f"{self.id} is {self.status}")
        self._completed(at=now)

    def exit(self, reason: str, now: datetime) -> bool:
        """End the run early; False (nothing recorded) if it had ended already."""
        if reason not in EXIT_REASONS:
            raise IllegalState(f"unknown exit reason {reason!r}")
        if self.status != "active":
            return False
        self._exited(reason=reason, at=now)
        return True

    @event(Exited)
    def _exited(self, reason: str, at: datetime) -> None:
        self.status = "exited"
        self.exit_reason = reason
        self.due_at = None
