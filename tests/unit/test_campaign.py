"""The Campaign aggregate's rules: audience, template, lifecycle and fan-out cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.campaign_fan_out import campaign_message_id
from domain.campaign import MAX_EXPLICIT_RECIPIENTS, Campaign, check_template, render
from domain.errors import IllegalState, InvalidValue
from domain.message import Message


def draft(**fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "campaign_id": 7,
        "tenant": "t1",
        "name": "Black Friday",
        "content": "Hi {{name}}",
        "recipient_ids": [3, 1, 2, 3],
    }
    return Campaign.create(**(values | fields))


def replayed(campaign: Campaign) -> Campaign:
    copy: Any = None
    for event in campaign.collect_events():
        copy = event.mutate(copy)
    return copy


def test_explicit_recipients_are_kept_sorted_and_unique() -> None:
    assert draft().recipient_ids == (1, 2, 3)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recipient_ids": []}, "recipient_ids"),
        ({"recipient_ids": None}, "recipient_ids"),
        ({"recipient_ids": [1], "segment_tags": ["vip"]}, "recipient_ids"),
        ({"recipient_ids": [0]}, "recipient_ids"),
        ({"recipient_ids": [True]}, "recipient_ids"),
        ({"recipient_ids": range(1, MAX_EXPLICIT_RECIPIENTS + 2)}, "recipient_ids"),
        ({"content": "Hi {{nickname}}"}, "content"),
        ({"content": "Hi {{name}"}, "content"),
        ({"content": ""}, "content"),
        ({"price_cents": 299}, "price_cents"),
        ({"price_cents": 20_001}, "price_cents"),
        ({"priority": 0}, "priority"),
        ({"name": ""}, "campaign_name"),
        ({"kind": "drip"}, "type"),
        ({"recipient_ids": None, "segment_min_value_cents": -1}, "min_value_cents"),
        ({"scheduled_at": datetime(2030, 1, 1)}, "scheduled_at"),
    ],
)
def test_a_bad_campaign_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        draft(**fields)
    assert refused.value.field == field


def test_a_segment_alone_is_an_audience() -> None:
    campaign = draft(recipient_ids=None, segment_tags=["VIP"], segment_min_value_cents=0)
    assert campaign.recipient_ids is None
    assert campaign.segment_tags == ("vip",)


def test_the_lifecycle_accepts_only_legal_moves() -> None:
    campaign = draft()
    for illegal in (campaign.pause, campaign.resume, campaign.complete):
        with pytest.raises(IllegalState):
            illegal()
    campaign.launch(total_recipients=3, audience_max_fan_id=9)
    assert campaign.status == "active"
    assert campaign.sending
    with pytest.raises(IllegalState):
        campaign.launch(total_recipients=3, audience_max_fan_id=9)
    campaign.pause()
    assert not campaign.sending
    with pytest.raises(IllegalState):
        campaign.record_chunk(cursor=2, queued=2, skipped=0)
    campaign.resume()
    campaign.record_chunk(cursor=2, queued=2, skipped=0)
    with pytest.raises(IllegalState):
        campaign.record_chunk(cursor=2, queued=1, skipped=0)  # the cursor only moves on
    with pytest.raises(IllegalState):
        campaign.complete()  # still fanning out
    campaign.record_chunk(cursor=3, queued=0, skipped=1)
    campaign.finish_fan_out()
    campaign.complete()
    assert campaign.status == "completed"
    with pytest.raises(IllegalState):
        campaign.cancel()
    again = replayed(campaign)
    assert (again.status, again.cursor, again.queued, again.skipped) == ("completed", 3, 2, 1)


def test_an_empty_audience_cannot_be_launched() -> None:
    with pytest.raises(InvalidValue):
        draft().launch(total_recipients=0, audience_max_fan_id=0)


def test_a_cancelled_campaign_stays_cancelled() -> None:
    campaign = draft()
    campaign.cancel()
    for move in (campaign.resume, campaign.pause, campaign.cancel):
        with pytest.raises(IllegalState):
            move()


@pytest.mark.parametrize(
    ("template", "name", "handle", "expected"),
    [
        ("Hi {{name}}!", "Ann Lee", "ann", "Hi Ann Lee!"),
        ("Hi {{first_name}}!", "Ann Lee", "ann", "Hi Ann!"),
        ("Hi {{ name }}!", None, "ann", "Hi ann!"),
        ("Hi {{name|babe}}!", None, None, "Hi babe!"),
        ("Hi {{name}}!", None, None, "Hi !"),
        ("@{{handle}}", "Ann", "ann_x", "@ann_x"),
    ],
)
def test_templates_are_personalised(
    template: str, name: str | None, handle: str | None, expected: str
) -> None:
    assert render(check_template(template), name=name, handle=handle) == expected


@given(st.text(alphabet=st.characters(blacklist_characters="{}\x00"), min_size=1))
def test_text_without_placeholders_renders_as_itself(text: str) -> None:
    if text.strip():
        assert render(check_template(text), name="x", handle="y") == text


@given(st.integers(1, 10**9), st.integers(1, 10**9), st.integers(1, 10**9))
def test_each_fan_of_a_campaign_has_one_message_id_of_its_own(
    campaign: int, fan: int, other: int
) -> None:
    assert campaign_message_id(campaign, fan) == campaign_message_id(campaign, fan)
    if other != fan:
        assert campaign_message_id(campaign, fan) != campaign_message_id(campaign, other)
    if other != campaign:
        assert campaign_message_id(campaign, fan) != campaign_message_id(other, fan)


def queued(campaign_id: int | None = 1, priority: int = 9) -> Message:
    return Message.queue(
        message_id="5a3c3d8e-8f1e-4b7e-9d44-5e9c1d0b7a21",
        tenant="t1",
        conversation_id=1,
        fan_id=1,
        content="Hi",
        priority=priority,
        campaign_id=campaign_id,
    )


def test_campaign_messages_go_to_the_normal_queue_whatever_their_priority() -> None:
    assert queued(campaign_id=1).queue_name() == "normal"
    assert queued(campaign_id=None).queue_name() == "high"


def test_a_held_message_is_released_and_a_cancelled_one_is_never_sent() -> None:
    message = queued()
    assert message.hold("campaign paused")
    assert not message.hold("again")
    assert message.status == "held"
    assert message.release()
    assert message.status == "queued"
    assert message.cancel("campaign cancelled")
    assert message.status == "cancelled"
    assert not message.release()
    assert not message.cancel("again")


def test_a_sent_message_stays_sent_when_its_campaign_is_cancelled() -> None:
    message = queued()
    message.mark_sent("p1")
    assert not message.cancel("campaign cancelled")
    assert not message.hold("campaign paused")
    assert message.confirm_delivery()
    assert not message.confirm_delivery()
    assert message.record_click()
    assert not message.record_click()
    assert message.status == "sent"


def test_receipts_of_an_unsent_message_are_refused() -> None:
    with pytest.raises(IllegalState):
        queued().confirm_delivery()
    with pytest.raises(IllegalState):
        queued().record_click()


def test_a_schedule_in_the_future_is_kept() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert replayed(draft(scheduled_at=at)).scheduled_at == at


@pytest.mark.parametrize("cents", [2**63, 99_999_999_999_999_999_999, -1])
def test_a_segment_minimum_outside_bigint_is_refused(cents: int) -> None:
    with pytest.raises(InvalidValue) as raised:
        draft(recipient_ids=None, segment_min_value_cents=cents)
    assert raised.value.field == "min_value_cents"


def test_a_draft_recorded_before_the_bigint_rule_cannot_launch() -> None:
    old = draft(recipient_ids=None, segment_min_value_cents=5)
    old.segment_min_value_cents = 2**63  # as an event recorded before the rule replays

    with pytest.raises(InvalidValue):
        old.check_launchable()
    draft(recipient_ids=None, segment_min_value_cents=2**63 - 1).check_launchable()
