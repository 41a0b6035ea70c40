"""The Sequence aggregate: an automation that sends a fan a series of messages, each after a
wait, once a trigger enrols the fan (a welcome series, a nudge to a fan gone quiet).

    active ◄──resume── paused
      │  └───pause────► │
      └──► archived ◄───┘        (archived is final: no step of it is sent again)

Each fan's run through it is an Enrolment (domain/enrolment.py). Edits (name, steps, exit
rules, re-entry) apply to runs under way from their next step on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import IllegalState, InvalidValue
from domain.sequence_rules import (
    ExitRules,
    Step,
    Trigger,
    check_exit,
    check_reentry,
    check_steps,
    check_trigger,
    check_zone,
)

Status = Literal["active", "paused", "archived"]
MAX_NAME = 200
_NEW_STATUSES: dict[str, Status] = {"active": "active", "paused": "paused"}


def sequence_stream_id(sequence_id: int) -> str:
    return f"sequence-{sequence_id}"


class Sequence(BaseAggregate[str]):
    @staticmethod
    def create_id(sequence_id: int) -> str:
        return sequence_stream_id(sequence_id)

    class Event(DomainEvent):
        pass

    class Created(Event, AggregateCreated):
        sequence_id: int
        tenant: str
        name: str
        trigger: Trigger
        steps: tuple[Step, ...]
        exit_rules: ExitRules
        reentry: str
        time_zone: str
        status: str

    class Updated(Event):
        # Every editable field's new value: a reader never needs the previous event.
        name: str
        steps: tuple[Step, ...]
        exit_rules: ExitRules
        reentry: str
        time_zone: str

    class Paused(Event):
        pass

    class Resumed(Event):
        pass

    class Archived(Event):
        pass

    @classmethod
    def create(
        cls,
        *,
        sequence_id: int,
        tenant: str,
        name: str,
        trigger: Trigger,
        steps: Iterable[Step],
        exit_rules: ExitRules | None = None,
        reentry: str = "never",
        time_zone: str = "UTC",
        status: str = "active",
    ) -> Sequence:
        initial = _NEW_STATUSES.get(status)
        if initial is None:
            raise InvalidValue("status", "a new sequence is active or paused")
        return cls(
            sequence_id=sequence_id,
            tenant=tenant,
            name=_name(name),
            trigger=check_trigger(trigger),
            steps=check_steps(steps),
            exit_rules=check_exit(exit_rules or ExitRules()),
            reentry=check_reentry(reentry),
            time_zone=check_zone(time_zone),
            status=initial,
        )

    @event(Created)
    def __init__(
        self,
        sequence_id: int,
        tenant: str,
        name: str,
        trigger: Trigger,
        steps: tuple[Step, ...],
        exit_rules: ExitRules,
        reentry: str,
        time_zone: str,
        status: Status,
    ) -> None:
        self.sequence_id = sequence_id
        self.tenant = tenant
        self.name = name
        self.trigger = trigger
        self.steps = tuple(steps)
        self.exit_rules = exit_rules
        self.reentry = reentry
        self.time_zone = time_zone
        self.status: Status = status

    def update(
        self,
        *,
        name: str | None = None,
        steps: Iterable[Step] | None = None,
        exit_rules: ExitRules | None = None,
        reentry: str | None = None,
        time_zone: str | None = None,
    ) -> None:
        if self.status == "archived":
            raise IllegalState(f"sequence {self.sequence_id} is archived")
        self._updated(
            name=self.name if name is None else _name(name),
            steps=self.steps if steps is None else check_steps(steps),
            exit_rules=self.exit_rules if exit_rules is None else check_exit(exit_rules),
            reentry=self.reentry if reentry is None else check_reentry(reentry),
            time_zone=self.time_zone if time_zone is None else check_zone(time_zone),
        )

    @event(Updated)
    def _updated(
        self,
        name: str,
        steps: tuple[Step, ...],
        exit_rules: ExitRules,
        reentry: str,
        time_zone: str,
    ) -> None:
        self.name = name
        self.steps = tuple(steps)
        self.exit_rules = exit_rules
        self.reentry = reentry
        self.time_zone = time_zone

    def pause(self) -> None:
        self._require("pause", "active")
        self._paused()

    @event(Paused)
    def _paused(self) -> None:
        self.status = "paused"

    def resume(self) -> None:
        self._require("resume", "paused")
        self._resumed()

    @event(Resumed)
    def _resumed(self) -> None:
        self.status = "active"

    def archive(self) -> None:
        """Archiving twice is no error: DELETE is an archive, and a repeated DELETE is fine."""
        if self.status != "archived":
            self._archived()

    @event(Archived)
    def _archived(self) -> None:
        self.status = "archived"

    def exits_on(self, reason: str, tag: str | None = None) -> bool:
        """Whether a fan's run ends for ``reason`` (deleted and erased always end it)."""
        rules = self.exit_rules
        return {
            "deleted": True,
            "erased": True,
            "replied": rules.replied,
            "purchased": rules.purchased,
            "tagAdded": tag in rules.tag_added,
            "tagRemoved": tag in rules.tag_removed,
        }.get(reason, False)

    def _require(self, action: str, *statuses: str) -> None:
        if self.status not in statuses:
            raise IllegalState(f"cannot {action} sequence {self.sequence_id}: it is {self.status}")


def _name(name: object) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME or "\x00" in text:
        raise InvalidValue("name", f"must be 1-{MAX_NAME} characters")
    return text
