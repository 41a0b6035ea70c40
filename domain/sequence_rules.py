"""The parts of a sequence: what starts it (trigger), its steps (a wait, then a message), and
what ends a fan's run through it early (exit rules). Values, validated once when written.

A step's wait is an ISO 8601 duration of days, hours, minutes and seconds (weeks too): months
and years are refused because their length depends on the calendar, and a person reading
"P1M" cannot tell which. ``at`` ("HH:MM") then moves the moment on to the next occurrence of
that local time in the sequence's time zone, so "P1D" + "09:00" is 9 am the day after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from domain.campaign import check_template, check_variant_messages
from domain.errors import InvalidValue
from domain.fan import normalise_tags
from domain.message import attachment_type_of, normalise_attachments, normalise_price
from domain.variants import AbTest, Goal, Variant, check_ab_test, choose_variant

TRIGGERS = frozenset(
    {
        "fanCreated",
        "fanImported",
        "subscribed",
        "tagAdded",
        "purchase",
        "inactive",
        "noReply",
        "atRisk",  # scored at risk by the account's latest churn model; takes no field
    }
)
REENTRY = frozenset({"never", "afterExit", "always"})
MAX_STEPS = 20
MAX_WAIT = timedelta(days=366)
MAX_INACTIVE_DAYS = 365
MAX_NO_REPLY_HOURS = 24 * 30

_DURATION = re.compile(
    r"P(?:(?P<w>\d{1,3})W)?(?:(?P<d>\d{1,3})D)?"
    r"(?:T(?:(?P<h>\d{1,4})H)?(?:(?P<m>\d{1,6})M)?(?:(?P<s>\d{1,7})S)?)?"
)
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class Trigger(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    tag: str | None = None  # tagAdded
    days: int | None = None  # inactive: no message from the fan nor purchase for this long
    hours: int | None = None  # noReply: this long after the account's last message


class Step(msgspec.Struct, frozen=True, kw_only=True):
    wait: str = "PT0S"
    at: str | None = None
    content: str
    price_cents: int = 0
    attachments: tuple[tuple[str, str], ...] = ()
    # An A/B test of the step (domain/variants.py): each fan gets one variant, chosen from the
    # step and the fan; ``content``, the price and media are then the variants'.
    variants: tuple[Variant, ...] = ()
    goal: Goal = "purchase"  # what the step's test is judged on
    # ``priceCents: "auto"``: the pricing model prices each fan's message of this step when
    # it is queued (``price_cents`` is then 0 and unused). Absent from steps stored before.
    auto_price: bool = False

    def message_for(
        self, sequence_id: int, index: int, fan_id: int
    ) -> tuple[int | None, str, int, tuple[tuple[str, str], ...]]:
        """(variant index or None, content template, price, attachments) for the fan."""
        if not self.variants:
            return None, self.content, self.price_cents, self.attachments
        weights = [variant.weight for variant in self.variants]
        chosen = choose_variant(step_test_key(sequence_id, index), fan_id, weights)
        variant = self.variants[chosen]
        return chosen, variant.content, variant.price_cents, variant.attachments


def step_test_key(sequence_id: int, index: int) -> str:
    """A step's test, named apart from every campaign's (``campaign-<id>``)."""
    return f"sequence-{sequence_id}:step-{index}"


class ExitRules(msgspec.Struct, frozen=True, kw_only=True):
    """Deletion and erasure always end a run; these are the rules a person chooses."""

    replied: bool = True
    purchased: bool = False
    tag_added: tuple[str, ...] = ()
    tag_removed: tuple[str, ...] = ()


def parse_wait(text: object) -> timedelta:
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or str(text).endswith("T"):
        raise InvalidValue(
            "wait", "must be an ISO 8601 duration of weeks, days, hours, minutes or seconds"
        )
    n = {key: int(value or 0) for key, value in match.groupdict().items()}
    wait = timedelta(weeks=n["w"], days=n["d"], hours=n["h"], minutes=n["m"], seconds=n["s"])
    if wait > MAX_WAIT:
        raise InvalidValue("wait", f"must be at most {MAX_WAIT.days} days")
    return wait


def parse_time_of_day(text: str) -> time:
    match = _TIME_OF_DAY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidValue("at", "must be a local time of day, HH:MM (00:00 to 23:59)")
    return time(int(match.group(1)), int(match.group(2)))


def check_zone(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")):
        raise InvalidValue("time_zone", "must be an IANA time zone such as Europe/London")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue("time_zone", f"unknown time zone {name!r}") from None
    return name


def step_due(step: Step, since: datetime, zone: str) -> datetime:
    """When ``step`` falls due, counted from ``since`` (the enrolment, or the previous step)."""
    moment = since + parse_wait(step.wait)
    if step.at is None:
        return moment
    local = moment.astimezone(ZoneInfo(zone))
    wanted = parse_time_of_day(step.at)
    due = datetime.combine(local.date(), wanted, tzinfo=local.tzinfo)
    if due < local:
        due = datetime.combine(local.date() + timedelta(days=1), wanted, tzinfo=local.tzinfo)
    return due.astimezone(UTC)


def check_trigger(trigger: Trigger) -> Trigger:
    if trigger.type not in TRIGGERS:
        raise InvalidValue("trigger", f"type must be one of {', '.join(sorted(TRIGGERS))}")
    tag = None
    if trigger.type == "tagAdded":
        if trigger.tag is None:
            raise InvalidValue("trigger", "tagAdded needs the tag")
        tag = normalise_tags([trigger.tag])[0]
    days = _bounded("days", trigger.days, MAX_INACTIVE_DAYS, trigger.type == "inactive")
    hours = _bounded("hours", trigger.hours, MAX_NO_REPLY_HOURS, trigger.type == "noReply")
    return Trigger(type=trigger.type, tag=tag, days=days, hours=hours)


def _auto_price(step: Step) -> bool:
    if step.auto_price and step.variants:
        # A test compares its variants as they are, prices included.
        raise InvalidValue("price_cents", '"auto" prices a step without variants only')
    return step.auto_price


def check_steps(steps: Iterable[Step]) -> tuple[Step, ...]:
    checked = []
    for step in steps:
        parse_wait(step.wait)
        if step.at is not None:
            parse_time_of_day(step.at)
        checked.append(
            Step(
                wait=step.wait,
                at=step.at,
                content="" if step.variants else check_template(step.content),
                price_cents=normalise_price(step.price_cents),
                attachments=normalise_attachments(step.attachments),
                variants=_checked_variants(step),
                goal=_step_goal(step.goal),
                auto_price=_auto_price(step),
            )
        )
    if not 1 <= len(checked) <= MAX_STEPS:
        raise InvalidValue("steps", f"must hold 1 to {MAX_STEPS} steps")
    return tuple(checked)


def _step_goal(goal: str) -> Goal:
    checked = check_ab_test(AbTest(goal=goal)).goal  # type: ignore[arg-type]
    if checked == "open":  # the platforms' read receipts are not counted per step
        raise InvalidValue("goal", "a step's test is judged on purchase or reply")
    return checked


def _checked_variants(step: Step) -> tuple[Variant, ...]:
    if not step.variants:
        return ()
    if step.content:
        raise InvalidValue("content", "a step with variants takes each variant's content")
    return check_variant_messages(step.variants)


def media(urls: Iterable[str]) -> tuple[tuple[str, str], ...]:
    return tuple((attachment_type_of(url), url) for url in urls)


def check_exit(rules: ExitRules) -> ExitRules:
    return ExitRules(
        replied=rules.replied,
        purchased=rules.purchased,
        tag_added=normalise_tags(rules.tag_added),
        tag_removed=normalise_tags(rules.tag_removed),
    )


def check_reentry(reentry: str) -> str:
    if reentry not in REENTRY:
        raise InvalidValue("reentry", f"must be one of {', '.join(sorted(REENTRY))}")
    return reentry


def _bounded(field: str, value: int | None, most: int, required: bool) -> int | None:
    if not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidValue("trigger", f"{field} must be a whole number from 1 to {most}")
    return value
