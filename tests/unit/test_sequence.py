"""The Sequence and Enrolment aggregates: Given (events) / When (a decision) / Then (events or
an error), with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.enrolment import Enrolment
from domain.errors import IllegalState, InvalidValue
from domain.sequence import Sequence
from domain.sequence_rules import ExitRules, Step, Trigger, check_steps, parse_wait, step_due
from domain.variants import Variant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def welcome(**fields: Any) -> Sequence:
    values: dict[str, Any] = {
        "sequence_id": 4,
        "tenant": "t1",
        "name": "Welcome",
        "trigger": Trigger(type="fanCreated"),
        "steps": [
            Step(content="Hi {{first_name|babe}}"),
            Step(wait="P1D", content="Day two"),
            Step(wait="PT2H", content="A treat", price_cents=500),
        ],
    }
    return Sequence.create(**(values | fields))


def replayed(aggregate: Any) -> Any:
    copy: Any = None
    for event in aggregate.collect_events():
        copy = event.mutate(copy)
    return copy


def enrolled(due: datetime = NOW) -> Enrolment:
    enrolment = Enrolment.enrol(
        sequence_id=4, fan_id=9, tenant="t1", entry=1, trigger="e1", now=NOW, first_due=due
    )
    enrolment.collect_events()
    return enrolment


def test_a_new_sequence_is_active_with_its_rules_checked_and_replays_the_same() -> None:
    sequence = welcome(trigger=Trigger(type="tagAdded", tag="  VIP "))

    copy = replayed(sequence)

    assert copy.status == "active"
    assert copy.trigger == Trigger(type="tagAdded", tag="vip")
    assert [s.wait for s in copy.steps] == ["PT0S", "P1D", "PT2H"]
    assert copy.exit_rules == ExitRules(replied=True)
    assert copy.reentry == "never"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "  "}, "name"),
        ({"trigger": Trigger(type="birthday")}, "trigger"),
        ({"trigger": Trigger(type="tagAdded")}, "trigger"),
        ({"trigger": Trigger(type="inactive")}, "trigger"),
        ({"trigger": Trigger(type="noReply", hours=0)}, "trigger"),
        ({"steps": []}, "steps"),
        ({"steps": [Step(wait="P1M", content="x")]}, "wait"),
        ({"steps": [Step(wait="1 day", content="x")]}, "wait"),
        ({"steps": [Step(wait="PT", content="x")]}, "wait"),
        ({"steps": [Step(at="25:00", content="x")]}, "at"),
        ({"steps": [Step(content="Hi {{nickname}}")]}, "content"),
        ({"steps": [Step(content="x", price_cents=100)]}, "price_cents"),
        ({"reentry": "sometimes"}, "reentry"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"status": "archived"}, "status"),
    ],
)
def test_a_sequence_breaking_a_rule_is_refused_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as refused:
        welcome(**fields)
    assert refused.value.field == field


def test_waits_are_iso_durations_of_weeks_days_hours_minutes_and_seconds() -> None:
    assert parse_wait("PT0S") == timedelta(0)
    assert parse_wait("P1W2DT3H4M5S") == timedelta(days=9, hours=3, minutes=4, seconds=5)


def test_a_time_of_day_is_the_next_one_in_the_sequences_zone_after_the_wait() -> None:
    step = Step(wait="P1D", at="09:00", content="x")

    # 12:00 UTC on 1 March + 1 day is 07:00 in New York: 09:00 there is that same day.
    due = step_due(step, NOW, "America/New_York")

    assert due == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert step_due(Step(at="09:00", content="x"), NOW, "UTC") == datetime(
        2026, 3, 2, 9, 0, tzinfo=UTC
    )


def test_edits_apply_to_a_live_sequence_and_an_archived_one_refuses_them() -> None:
    sequence = welcome()
    sequence.update(name="Hello", reentry="afterExit")
    assert (sequence.name, sequence.reentry, len(sequence.steps)) == ("Hello", "afterExit", 3)

    sequence.archive()
    sequence.archive()  # a second DELETE is no error and records nothing

    assert [type(e) for e in sequence.collect_events()][-1] is Sequence.Archived
    with pytest.raises(IllegalState):
        sequence.update(name="Again")
    with pytest.raises(IllegalState):
        sequence.resume()


def test_pause_and_resume_follow_the_lifecycle() -> None:
    sequence = welcome()
    with pytest.raises(IllegalState):
        sequence.resume()
    sequence.pause()
    assert replayed(sequence).status == "paused"
    sequence.resume()
    assert sequence.status == "active"


def test_exit_rules_decide_which_events_end_a_run_and_deletion_always_does() -> None:
    sequence = welcome(exit_rules=ExitRules(replied=False, tag_removed=("vip",)))

    assert sequence.exits_on("deleted")
    assert sequence.exits_on("erased")
    assert not sequence.exits_on("replied")
    assert sequence.exits_on("tagRemoved", "vip")
    assert not sequence.exits_on("tagRemoved", "other")


def test_an_enrolment_sends_its_due_step_once_then_completes_after_the_last() -> None:
    enrolment = enrolled()

    enrolment.record_step(step=0, message_id="m0", now=NOW, next_due=NOW + timedelta(days=1))

    assert not enrolment.due(NOW)
    with pytest.raises(IllegalState):
        enrolment.record_step(step=0, message_id="m0", now=NOW, next_due=None)
    later = NOW + timedelta(days=1)
    enrolment.record_step(step=1, message_id="m1", now=later, next_due=None)
    events = enrolment.collect_events()
    assert [type(e) for e in events] == [
        Enrolment.StepSent,
        Enrolment.StepSent,
        Enrolment.Completed,
    ]
    assert enrolment.status == "completed"


def test_a_step_not_yet_due_is_refused() -> None:
    enrolment = enrolled(due=NOW + timedelta(hours=1))

    with pytest.raises(IllegalState):
        enrolment.record_step(step=0, message_id="m0", now=NOW, next_due=None)


def test_an_exited_enrolment_sends_nothing_and_exits_only_once() -> None:
    enrolment = enrolled()

    assert enrolment.exit("replied", NOW) is True
    assert enrolment.exit("purchased", NOW) is False
    assert not enrolment.due(NOW + timedelta(days=9))
    assert [type(e) for e in enrolment.collect_events()] == [Enrolment.Exited]
    assert enrolment.exit_reason == "replied"


def test_a_steps_variant_is_the_fans_whoever_asks_and_carries_its_own_message() -> None:
    soft = Variant(name="Soft", content="Soft {{name}}", price_cents=500)
    bold = Variant(name="Bold", content="Bold", price_cents=900, weight=3)
    (step,) = check_steps([Step(content="", variants=(soft, bold))])
    picks = {fan: step.message_for(7, 0, fan) for fan in range(200)}
    assert picks == {fan: step.message_for(7, 0, fan) for fan in range(200)}
    assert {pick[0] for pick in picks.values()} == {0, 1}
    for variant, template, price, _ in picks.values():
        assert variant is not None
        assert (template, price) == (
            step.variants[variant].content,
            step.variants[variant].price_cents,
        )
    # Another step (or sequence) is another test: its split is its own.
    assert [step.message_for(7, 1, fan)[0] for fan in range(200)] != [
        picks[fan][0] for fan in range(200)
    ]
    plain = Step(content="Hi", price_cents=300)
    assert plain.message_for(7, 0, 1) == (None, "Hi", 300, ())


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (
            Step(
                content="Hi",
                variants=(Variant(name="", content="A"), Variant(name="", content="B")),
            ),
            "content",
        ),
        (Step(content="", variants=(Variant(name="", content="A"),)), "variants"),
        (
            Step(
                content="",
                variants=(Variant(name="", content="A"), Variant(name="", content="{{x}}")),
            ),
            "content",
        ),
        (Step(content="Hi", goal="open"), "goal"),  # type: ignore[arg-type]
    ],
)
def test_a_steps_test_is_checked_like_a_campaigns(step: Step, field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        check_steps([step])
    assert refused.value.field == field
