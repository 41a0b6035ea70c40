"""A campaign that is an A/B test: its variants, each fan's message, the auto-winner's passes,
and the stored events of campaigns from before tests existed."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.postgres.event_store.mapper import (
    decode_event,
    decode_event_json,
    encode_json,
    event_fields,
    event_type_of,
)
from domain.campaign import Campaign
from domain.errors import IllegalState, InvalidValue
from domain.message import Message
from domain.variants import AbTest, Variant, choose_variant, in_test_portion

A = Variant(name="A", content="Hi {{name}}", price_cents=500, weight=1)
B = Variant(
    name="B",
    content="Special for you",
    price_cents=900,
    attachments=(("image", "https://cdn.example.com/b.jpg"),),
    weight=3,
)


def ab_campaign(**fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "campaign_id": 11,
        "tenant": "t1",
        "name": "Test",
        "content": "",
        "recipient_ids": list(range(1, 201)),
        "variants": [A, B],
    }
    return Campaign.create(**(values | fields))


def replayed(campaign: Campaign) -> Campaign:
    copy: Any = None
    for event in campaign.collect_events():
        copy = event.mutate(copy)
    return copy


def test_a_campaign_with_variants_shows_its_first_variant_as_its_template() -> None:
    campaign = ab_campaign()
    assert (campaign.content, campaign.price_cents, campaign.attachments) == (
        "Hi {{name}}",
        500,
        (),
    )
    assert campaign.ab_test == AbTest()


def test_each_fan_gets_the_variant_chosen_for_it_and_that_variants_template() -> None:
    campaign = ab_campaign()
    for fan_id in range(1, 50):
        variant = campaign.variant_for(fan_id)
        assert variant == choose_variant("campaign-11", fan_id, [1, 3])
        assert campaign.template_for(variant)[1] == (500, 900)[variant]


def test_a_campaign_without_variants_sends_its_own_template() -> None:
    campaign = Campaign.create(
        campaign_id=1, tenant="t", name="n", content="Hello", recipient_ids=[1]
    )
    assert campaign.variant_for(1) is None
    assert campaign.template_for(None) == ("Hello", 0, ())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"variants": [A]}, "variants"),
        ({"variants": [A, Variant(name="B", content="{{nope}}")]}, "content"),
        ({"variants": [A, Variant(name="B", content="x", price_cents=-1)]}, "price_cents"),
        ({"variants": (), "content": "x", "ab_test": AbTest()}, "variants"),
        ({"ab_test": AbTest(auto_winner=True)}, "holdout"),
    ],
)
def test_a_malformed_test_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        ab_campaign(**fields)
    assert refused.value.field == field


def test_an_auto_winner_test_sends_its_portion_then_waits_then_sends_the_rest_the_winner() -> None:
    campaign = ab_campaign(ab_test=AbTest(auto_winner=True, holdout_percent=30))
    campaign.launch(total_recipients=200, audience_max_fan_id=200)
    first = [f for f in range(1, 201) if campaign.in_this_pass(f)]
    assert first == [f for f in range(1, 201) if in_test_portion("campaign-11", f, 30)]
    campaign.record_chunk(cursor=200, queued=len(first), skipped=0)
    campaign.finish_fan_out()
    assert campaign.awaiting_winner
    assert not campaign.sending
    assert not campaign.fanned_out

    campaign.choose_winner(1, 0.97)
    assert campaign.sending
    assert campaign.cursor == 0
    rest = [f for f in range(1, 201) if campaign.in_this_pass(f)]
    assert sorted(first + rest) == list(range(1, 201))
    assert {campaign.variant_for(f) for f in rest} == {1}
    campaign.record_chunk(cursor=200, queued=len(rest), skipped=0)
    campaign.finish_fan_out()
    assert campaign.fanned_out

    again = replayed(campaign)
    assert (again.winner, again.fanned_out, again.cursor) == (1, True, 200)


def test_a_winner_is_chosen_once_and_only_after_the_test_portion() -> None:
    campaign = ab_campaign(ab_test=AbTest(auto_winner=True, holdout_percent=50))
    campaign.launch(total_recipients=200, audience_max_fan_id=200)
    with pytest.raises(IllegalState):
        campaign.choose_winner(0, 0.99)
    campaign.finish_fan_out()
    with pytest.raises(InvalidValue):
        campaign.choose_winner(2, 0.99)
    campaign.choose_winner(0, 0.99)
    with pytest.raises(IllegalState):
        campaign.choose_winner(1, 0.99)


def test_a_test_without_auto_winner_sends_everyone_in_one_pass() -> None:
    campaign = ab_campaign()
    campaign.launch(total_recipients=200, audience_max_fan_id=200)
    assert all(campaign.in_this_pass(f) for f in range(1, 201))
    campaign.finish_fan_out()
    assert campaign.fanned_out


def test_variants_survive_the_event_store_round_trip() -> None:
    created = ab_campaign(ab_test=AbTest(goal="reply", auto_winner=True, holdout_percent=20))
    event = created.collect_events()[0]
    fields = event_fields(event)
    back = decode_event(event_type_of(event), event.originator_id, 1, fields, 1)
    assert isinstance(back, Campaign.Created)
    assert back.variants == created.variants
    from_text = decode_event_json("CampaignCreated", event.originator_id, 1, encode_json(fields))
    assert isinstance(from_text, Campaign.Created)
    assert from_text.variants == created.variants
    assert back.ab_test == AbTest(goal="reply", auto_winner=True, holdout_percent=20)


def test_a_campaign_and_a_message_stored_before_tests_existed_still_decode() -> None:
    campaign = Campaign.create(
        campaign_id=3, tenant="t", name="Old", content="Hello", recipient_ids=[1]
    )
    event = campaign.collect_events()[0]
    stored = event_fields(event)
    del stored["variants"], stored["ab_test"]
    back = decode_event("CampaignCreated", event.originator_id, 1, stored, 1)
    assert isinstance(back, Campaign.Created)
    assert (back.variants, back.ab_test) == ((), None)

    message = Message.queue(
        message_id="00000000-0000-0000-0000-000000000001",
        tenant="t",
        conversation_id=1,
        fan_id=1,
        content="x",
        campaign_id=3,
    )
    queued = message.collect_events()[0]
    old = event_fields(queued)
    del old["variant"], old["to_rest"]
    decoded = decode_event("MessageQueued", queued.originator_id, 1, old, 1)
    assert isinstance(decoded, Message.Queued)
    assert (decoded.variant, decoded.to_rest) == (None, False)
