"""The Campaign aggregate: one mass message to an audience of fans, and its lifecycle.

    draft ──launch──► active ◄──resume── paused
                        │  └───pause────►  │
                        ├──► completed     │
                        └──► cancelled ◄───┘   (a draft may be cancelled too)

The audience is explicit fan ids or a segment (tags, minimum lifetime value, active since).
The campaign worker fans it out in chunks: each chunk's messages and the ``ChunkQueued`` that
moves the campaign's cursor commit together, so a crash never queues a fan twice or skips one.
``completed`` is recorded once every queued message has an outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import msgspec
from eventsourcing.domain import BaseAggregate, event

from domain.base import AggregateCreated, DomainEvent
from domain.errors import IllegalState, InvalidValue
from domain.fan import normalise_tags
from domain.message import (
    normalise_attachments,
    normalise_content,
    normalise_price,
    normalise_priority,
)
from domain.variants import (
    AbTest,
    Variant,
    check_ab_test,
    check_variants,
    choose_variant,
    in_test_portion,
)

Status = Literal["draft", "active", "paused", "completed", "cancelled"]
KINDS = frozenset({"bulk_message"})
MAX_NAME = 200
MAX_EXPLICIT_RECIPIENTS = 100_000
MAX_SKIP_REASON = 300
MAX_CENTS = 2**63 - 1

# {{name}} or {{name|fallback}}: the fan's value, or the fallback when the fan has none.
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*(?:\|([^{}]*))?\}\}")
PLACEHOLDERS = frozenset({"name", "first_name", "handle"})


def campaign_stream_id(campaign_id: int) -> str:
    return f"campaign-{campaign_id}"


def check_template(content: str) -> str:
    content = normalise_content(content)
    unknown = sorted(
        {m.group(1) for m in _PLACEHOLDER.finditer(content)} - PLACEHOLDERS,
    )
    if unknown:
        raise InvalidValue(
            "content",
            f"unknown placeholder(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(PLACEHOLDERS))}",
        )
    if "{{" in _PLACEHOLDER.sub("", content):
        raise InvalidValue("content", "has an unclosed or malformed '{{' placeholder")
    return content


def render(template: str, *, name: str | None, handle: str | None) -> str:
    """The template with the fan's values; a missing value becomes the fallback (or "")."""
    first_name = name.split()[0] if name and name.split() else None
    values = {"name": name or handle, "first_name": first_name or handle, "handle": handle}

    def value(match: re.Match[str]) -> str:
        return values.get(match.group(1)) or (match.group(2) or "").strip()

    return _PLACEHOLDER.sub(value, template)


class Campaign(BaseAggregate[str]):
    @staticmethod
    def create_id(campaign_id: int) -> str:
        return campaign_stream_id(campaign_id)

    class Event(DomainEvent):
        pass

    class Created(Event, AggregateCreated):
        campaign_id: int
        tenant: str
        name: str
        kind: str
        content: str
        attachments: tuple[tuple[str, str], ...]
        price_cents: int
        priority: int
        # Exactly one of: explicit fan ids (sorted, unique), or a segment.
        recipient_ids: tuple[int, ...] | None
        segment_tags: tuple[str, ...]
        segment_min_value_cents: int | None
        segment_active_since: datetime | None
        scheduled_at: datetime | None
        # An A/B test (domain/variants.py): each fan gets one of the variants, whose template
        # replaces ``content``, price and media (which hold the first variant's, for readers
        # that know nothing of tests). Absent from campaigns created before tests existed.
        variants: tuple[Variant, ...] = ()
        ab_test: AbTest | None = None
        # ``priceCents: "auto"``: each recipient's message is priced by the pricing model when
        # the fan-out queues it (``price_cents`` is then 0 and unused). Absent: a fixed price.
        auto_price: bool = False
        # The segment's ``atRisk``: only fans the churn model scores at risk (absent: any).
        segment_at_risk: bool = False

    class Launched(Event):
        # Recipients counted at launch, and the highest fan id then: fans created later are
        # never in the audience, whatever segment they match.
        total_recipients: int
        audience_max_fan_id: int
        # The member who launched it: its messages are sent in that member's name. None: a
        # key of the first release (and every campaign launched before members existed).
        launched_by: str | None = None

    class ChunkQueued(Event):
        cursor: int  # the last fan id handled, in fan id order
        queued: int
        skipped: int
        # Fans skipped for a reason an operator should see (fan id, reason), such as a message
        # id already used for another message; absent from chunks recorded before it existed.
        skipped_fans: tuple[tuple[int, str], ...] = ()

    class FanOutFinished(Event):
        pass

    class TestPortionQueued(Event):
        """An auto-winner test's portion of the audience is queued: the rest waits for the
        winner."""

    class WinnerChosen(Event):
        """The test met its stop rule: the rest of the audience gets ``variant``. The fan-out
        goes through the audience again from the start, queueing only fans outside the test
        portion, so each fan still gets exactly one message."""

        variant: int
        probability_best: float

    class Paused(Event):
        pass

    class Resumed(Event):
        pass

    class Cancelled(Event):
        pass

    class Completed(Event):
        pass

    @classmethod
    def create(
        cls,
        *,
        campaign_id: int,
        tenant: str,
        name: str,
        content: str,
        kind: str = "bulk_message",
        attachments: Iterable[tuple[str, str]] | None = None,
        price_cents: int | None = 0,
        priority: int = 5,
        recipient_ids: Iterable[int] | None = None,
        segment_tags: Iterable[str] | None = None,
        segment_min_value_cents: int | None = None,
        segment_active_since: datetime | None = None,
        scheduled_at: datetime | None = None,
        variants: Iterable[Variant] = (),
        ab_test: AbTest | None = None,
        auto_price: bool = False,
        segment_at_risk: bool = False,
    ) -> Campaign:
        """A draft: validated, not yet sending. With ``variants``, an A/B test whose first
        variant also stands as the campaign's content, price and media."""
        if kind not in KINDS:
            raise InvalidValue("type", f"must be one of {', '.join(sorted(KINDS))}")
        name = (name or "").strip() if isinstance(name, str) else ""
        if not name or len(name) > MAX_NAME or "\x00" in name:
            raise InvalidValue("campaign_name", f"must be 1-{MAX_NAME} characters")
        ids = _recipient_ids(recipient_ids)
        tags = normalise_tags(segment_tags)
        _check_min_value(segment_min_value_cents)
        has_segment = (
            bool(tags)
            or segment_min_value_cents is not None
            or segment_active_since is not None
            or segment_at_risk
        )
        if ids is None and not has_segment:
            raise InvalidValue("recipient_ids", "the audience is empty: give fan ids or a segment")
        if ids is not None and has_segment:
            raise InvalidValue("recipient_ids", "give fan ids or a segment, not both")
        for moment, field in (
            (segment_active_since, "active_since"),
            (scheduled_at, "scheduled_at"),
        ):
            if moment is not None and moment.tzinfo is None:
                raise InvalidValue(field, "must carry a timezone")
        tested = _check_test(variants, ab_test)
        if auto_price and tested:
            # A test compares its variants as they are, prices included.
            raise InvalidValue("price_cents", '"auto" prices a campaign without variants only')
        if auto_price:
            price_cents = 0
        if tested:
            content = tested[0].content
            attachments = tested[0].attachments
            price_cents = tested[0].price_cents
        return cls(
            campaign_id=campaign_id,
            tenant=tenant,
            name=name,
            kind=kind,
            content=check_template(content),
            attachments=normalise_attachments(attachments),
            price_cents=normalise_price(price_cents),
            priority=normalise_priority(priority),
            recipient_ids=ids,
            segment_tags=tags,
            segment_min_value_cents=segment_min_value_cents,
            segment_active_since=segment_active_since,
            scheduled_at=scheduled_at,
            variants=tested,
            ab_test=(ab_test or AbTest()) if tested else None,
            auto_price=auto_price,
            segment_at_risk=segment_at_risk,
        )

    @event(Created)
    def __init__(
        self,
        campaign_id: int,
        tenant: str,
        name: str,
        kind: str,
        content: str,
        attachments: tuple[tuple[str, str], ...],
        price_cents: int,
        priority: int,
        recipient_ids: tuple[int, ...] | None,
        segment_tags: tuple[str, ...],
        segment_min_value_cents: int | None,
        segment_active_since: datetime | None,
        scheduled_at: datetime | None,
        variants: tuple[Variant, ...] = (),
        ab_test: AbTest | None = None,
        auto_price: bool = False,
        segment_at_risk: bool = False,
    ) -> None:
        self.campaign_id = campaign_id
        self.auto_price = auto_price
        self.segment_at_risk = segment_at_risk
        self.tenant = tenant
        self.name = name
        self.kind = kind
        self.content = content
        self.attachments = tuple((kind, url) for kind, url in attachments)
        self.price_cents = price_cents
        self.priority = priority
        self.recipient_ids = tuple(recipient_ids) if recipient_ids is not None else None
        self.segment_tags = tuple(segment_tags)
        self.segment_min_value_cents = segment_min_value_cents
        self.segment_active_since = segment_active_since
        self.scheduled_at = scheduled_at
        self.status: Status = "draft"
        self.total_recipients = 0
        self.audience_max_fan_id = 0
        self.launched_by: str | None = None
        self.cursor = 0
        self.queued = 0
        self.skipped = 0
        self.fanned_out = False
        self.variants = tuple(variants)
        self.ab_test = ab_test
        self.test_portion_queued = False
        self.winner: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def check_launchable(self) -> None:
        """Before the audience is counted: a draft recorded before a rule of ``create``
        existed is refused now (422) rather than met by the query that counts it."""
        self._require("launch", "draft")
        _check_min_value(self.segment_min_value_cents)

    def launch(
        self, *, total_recipients: int, audience_max_fan_id: int, launched_by: str | None = None
    ) -> None:
        self._require("launch", "draft")
        if total_recipients <= 0:
            raise InvalidValue("recipient_ids", "the audience is empty: no fan matches")
        self._launched(
            total_recipients=total_recipients,
            audience_max_fan_id=audience_max_fan_id,
            launched_by=launched_by,
        )

    @event(Launched)
    def _launched(
        self, total_recipients: int, audience_max_fan_id: int, launched_by: str | None = None
    ) -> None:
        self.status = "active"
        self.launched_by = launched_by
        self.total_recipients = total_recipients
        self.audience_max_fan_id = audience_max_fan_id

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

    def cancel(self) -> None:
        self._require("cancel", "draft", "active", "paused")
        self._cancelled()

    @event(Cancelled)
    def _cancelled(self) -> None:
        self.status = "cancelled"

    def complete(self) -> None:
        """Every queued message has an outcome (the worker decides from the metrics)."""
        self._require("complete", "active")
        if not self.fanned_out:
            raise IllegalState(f"campaign {self.campaign_id} is still queueing messages")
        self._completed()

    @event(Completed)
    def _completed(self) -> None:
        self.status = "completed"

    # -- fan-out ---------------------------------------------------------------------------

    @property
    def sending(self) -> bool:
        """Whether the worker may queue messages for it now."""
        return self.status == "active" and not self.fanned_out and not self.awaiting_winner

    @property
    def sells(self) -> bool:
        """Whether any message it sends is priced (a PPV)."""
        return (
            self.auto_price or self.price_cents > 0 or any(v.price_cents > 0 for v in self.variants)
        )

    @property
    def auto_winner(self) -> bool:
        return bool(self.variants) and self.ab_test is not None and self.ab_test.auto_winner

    @property
    def awaiting_winner(self) -> bool:
        return self.test_portion_queued and self.winner is None

    def in_this_pass(self, fan_id: int) -> bool:
        """Whether the fan-out queues this fan now: every fan, except in an auto-winner test,
        whose first pass takes the test portion and whose second (after the winner) the rest."""
        if not self.auto_winner:
            return True
        percent = self.ab_test.holdout_percent if self.ab_test else None
        assert percent is not None  # check_ab_test: an auto winner has a test portion
        in_test = in_test_portion(self.id, fan_id, percent)
        return in_test if self.winner is None else not in_test

    def variant_for(self, fan_id: int) -> int | None:
        """The index of the variant this fan is sent (None: the campaign is no test)."""
        if not self.variants:
            return None
        if self.winner is not None:
            return self.winner
        return choose_variant(self.id, fan_id, [v.weight for v in self.variants])

    def template_for(self, variant: int | None) -> tuple[str, int, tuple[tuple[str, str], ...]]:
        """(content template, price, attachments) of the variant, or of the campaign."""
        if variant is None:
            return self.content, self.price_cents, self.attachments
        chosen = self.variants[variant]
        return chosen.content, chosen.price_cents, chosen.attachments

    def record_chunk(
        self,
        *,
        cursor: int,
        queued: int,
        skipped: int,
        skipped_fans: Iterable[tuple[int, str]] = (),
    ) -> None:
        if not self.sending:
            raise IllegalState(f"campaign {self.campaign_id} is {self.status}, not sending")
        if cursor <= self.cursor:
            raise IllegalState(f"chunk cursor {cursor} is not past {self.cursor}")
        reasons = tuple((fan_id, reason[:MAX_SKIP_REASON]) for fan_id, reason in skipped_fans)
        self._chunk_queued(cursor=cursor, queued=queued, skipped=skipped, skipped_fans=reasons)

    @event(ChunkQueued)
    def _chunk_queued(
        self, cursor: int, queued: int, skipped: int, skipped_fans: tuple[tuple[int, str], ...]
    ) -> None:
        self.cursor = cursor
        self.queued += queued
        self.skipped += skipped

    def finish_fan_out(self) -> None:
        """The pass reached the end of the audience: the fan-out is done, unless that was an
        auto-winner test's portion, after which the rest waits for the winner."""
        if not self.sending:
            raise IllegalState(f"campaign {self.campaign_id} is {self.status}, not sending")
        if self.auto_winner and self.winner is None:
            self._test_portion_queued()
        else:
            self._fan_out_finished()

    @event(FanOutFinished)
    def _fan_out_finished(self) -> None:
        self.fanned_out = True

    @event(TestPortionQueued)
    def _test_portion_queued(self) -> None:
        self.test_portion_queued = True

    def choose_winner(self, variant: int, probability_best: float) -> None:
        """The stop rule is met (judged by the caller on the test's results)."""
        self._require("choose a winner for", "active", "paused")
        if not self.awaiting_winner:
            raise IllegalState(f"campaign {self.campaign_id} is not waiting for a winner")
        if not 0 <= variant < len(self.variants):
            raise InvalidValue("variant", f"campaign {self.campaign_id} has no variant {variant}")
        self._winner_chosen(variant=variant, probability_best=probability_best)

    @event(WinnerChosen)
    def _winner_chosen(self, variant: int, probability_best: float) -> None:
        self.winner = variant
        self.cursor = 0  # the second pass, over the rest of the audience

    def _require(self, action: str, *statuses: str) -> None:
        if self.status not in statuses:
            raise IllegalState(f"cannot {action} campaign {self.campaign_id}: it is {self.status}")


def _check_test(variants: Iterable[Variant], ab_test: AbTest | None) -> tuple[Variant, ...]:
    given = tuple(variants)
    if not given:
        if ab_test is not None:
            raise InvalidValue("variants", "an abTest needs variants")
        return ()
    check_ab_test(ab_test or AbTest())
    return check_variant_messages(given)


def check_variant_messages(variants: Iterable[Variant]) -> tuple[Variant, ...]:
    """The variants checked (domain/variants.py), each one's message as a send's: its
    template, price and media. Campaigns' and sequence steps' tests alike."""
    return tuple(
        msgspec.structs.replace(
            variant,
            content=check_template(variant.content),
            price_cents=normalise_price(variant.price_cents),
            attachments=normalise_attachments(variant.attachments),
        )
        for variant in check_variants(variants)
    )


def _check_min_value(cents: int | None) -> None:
    # A fan's lifetime value is a bigint: a minimum beyond it matches no one and cannot even
    # be asked of the database.
    if cents is not None and (
        isinstance(cents, bool) or not isinstance(cents, int) or not 0 <= cents <= MAX_CENTS
    ):
        raise InvalidValue(
            "min_value_cents", f"must be an integer number of cents from 0 to {MAX_CENTS}"
        )


def _recipient_ids(values: Iterable[int] | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes):
        raise InvalidValue("recipient_ids", "must be a list of fan ids")
    values = list(values)
    if len(values) > MAX_EXPLICIT_RECIPIENTS:
        raise InvalidValue(
            "recipient_ids", f"at most {MAX_EXPLICIT_RECIPIENTS} explicit recipients"
        )
    # Up to 100,000 ids: checked in as few Python steps as may be (bool is an int: refused).
    if not all(type(value) is int for value in values):
        raise InvalidValue("recipient_ids", "each id must be a positive integer")
    ids = sorted(set(values))
    if not ids:
        raise InvalidValue("recipient_ids", "the audience is empty")
    if ids[0] <= 0:
        raise InvalidValue("recipient_ids", "each id must be a positive integer")
    return tuple(ids)
