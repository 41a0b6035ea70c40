"""Fan rules, Given (events) / When (command) / Then (events or error). No I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import Gone, InvalidValue
from domain.fan import MAX_TAGS, Fan, fan_stream_id


def registered(**overrides: object) -> Fan:
    fields: dict[str, object] = {"fan_id": 7, "tenant": "1", "name": "John Doe"}
    fields.update(overrides)
    return Fan.register(**fields)  # type: ignore[arg-type]


def replay(fan: Fan) -> Fan:
    rebuilt = None
    for event in fan.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Fan)
    return rebuilt


def test_registering_records_one_created_event_on_the_fans_stream() -> None:
    fan = registered(handle="@johndoe", email="john@example.com", value_cents=50_000)
    [created] = fan.collect_events()
    assert isinstance(created, Fan.Created)
    assert created.originator_id == fan_stream_id(7) == "fan-7"
    assert (created.name, created.handle, created.value_cents) == ("John Doe", "@johndoe", 50_000)


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    fan = registered(tags=["vip"])
    fan.update(notes="High value customer", value_cents=100)
    fan.delete()
    rebuilt = replay(fan)
    assert (rebuilt.notes, rebuilt.value_cents, rebuilt.tags) == (
        "High value customer",
        100,
        ("vip",),
    )
    assert rebuilt.deleted
    assert rebuilt.version == 3


def test_a_subscription_date_is_a_day_and_a_timestamp_keeps_its_day() -> None:
    fan = registered(subscribed_at=datetime(2024, 2, 29, 23, 30, tzinfo=UTC))
    assert fan.subscribed_at == date(2024, 2, 29)
    assert fan.update(subscribed_at=date(2023, 1, 1))
    assert replay(fan).subscribed_at == date(2023, 1, 1)
    with pytest.raises(InvalidValue) as refused:
        fan.update(subscribed_at="2024-01-01")
    assert refused.value.field == "subscribed_at"


@pytest.mark.parametrize(
    "email", ["plainaddress", "a@b", "@example.com", "john@", "a b@example.com", "x@y..z"]
)
def test_an_invalid_email_is_refused(email: str) -> None:
    with pytest.raises(InvalidValue) as error:
        registered(email=email)
    assert error.value.field == "email"


def test_an_email_is_trimmed_and_an_empty_one_is_no_email() -> None:
    assert registered(email="  john@example.com ").email == "john@example.com"
    assert registered(email="   ").email is None


@pytest.mark.parametrize("handle", ["john doe", "@", "a" * 65, "jöhn", "@@john"])
def test_a_malformed_handle_is_refused(handle: str) -> None:
    with pytest.raises(InvalidValue) as error:
        registered(handle=handle)
    assert error.value.field == "handle"


@pytest.mark.parametrize("value", [-1, 1.5, "100", True, 10**12])
def test_value_must_be_non_negative_integer_cents_within_bounds(value: object) -> None:
    with pytest.raises(InvalidValue) as error:
        registered(value_cents=value)
    assert error.value.field == "value_cents"


def test_tags_are_trimmed_lowercased_and_deduplicated_in_order() -> None:
    assert registered(tags=[" VIP ", "whale", "vip", "Big  Spender"]).tags == (
        "vip",
        "whale",
        "big spender",
    )


@pytest.mark.parametrize(
    "tags", [[""], ["   "], ["a" * 41], ["no/slash"], "vip", [f"t{i}" for i in range(MAX_TAGS + 1)]]
)
def test_tag_rules_refuse_bad_tags(tags: object) -> None:
    with pytest.raises(InvalidValue) as error:
        registered(tags=tags)
    assert error.value.field == "tags"


def test_a_fan_needs_a_name_or_a_handle() -> None:
    with pytest.raises(InvalidValue):
        registered(name=None)
    assert registered(name=None, handle="@anon").handle == "@anon"


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(InvalidValue) as error:
        registered(platform="myspace")
    assert error.value.field == "platform"


def test_notes_over_the_limit_are_refused() -> None:
    with pytest.raises(InvalidValue):
        registered(notes="x" * 10_001)


def test_an_update_that_changes_nothing_records_nothing() -> None:
    fan = registered(tags=["vip"])
    fan.collect_events()
    assert fan.update(tags=["VIP"], name="John Doe") is False
    assert fan.collect_events() == []


def test_an_update_records_the_new_value_of_every_editable_field() -> None:
    fan = registered(email="john@example.com")
    fan.collect_events()
    assert fan.update(notes="hi")
    [updated] = fan.collect_events()
    assert isinstance(updated, Fan.Updated)
    assert (updated.email, updated.notes, updated.originator_version) == (
        "john@example.com",
        "hi",
        2,
    )


def test_an_update_can_clear_an_optional_field() -> None:
    fan = registered(email="john@example.com")
    fan.update(email=None)
    assert fan.email is None


def test_an_invalid_update_records_nothing_and_keeps_the_state() -> None:
    fan = registered(value_cents=10)
    fan.collect_events()
    with pytest.raises(InvalidValue):
        fan.update(value_cents=-5, notes="changed")
    assert (fan.value_cents, fan.notes, fan.collect_events()) == (10, None, [])


def test_only_editable_fields_can_be_updated() -> None:
    with pytest.raises(InvalidValue):
        registered().update(tenant="2")


def test_a_deleted_fan_refuses_every_command() -> None:
    fan = registered()
    fan.delete()
    with pytest.raises(Gone):
        fan.update(notes="x")
    with pytest.raises(Gone):
        fan.delete()


@given(value=st.integers(min_value=0, max_value=1_000_000_000))
def test_any_non_negative_amount_of_cents_within_bounds_is_kept_exactly(value: int) -> None:
    assert registered(value_cents=value).value_cents == value


@given(tags=st.lists(st.sampled_from(["vip", "VIP", " whale", "new", "New "]), max_size=20))
def test_normalised_tags_are_unique_and_lowercase(tags: list[str]) -> None:
    result = registered(tags=tags).tags
    assert len(result) == len(set(result))
    assert all(tag == tag.strip().lower() for tag in result)


def test_erasing_clears_personal_data_and_ends_the_fan() -> None:
    fan = registered(handle="@john", email="john@example.com", notes="n", value_cents=900)
    fan.erase()
    assert (fan.name, fan.handle, fan.email, fan.notes) == (None, None, None, None)
    assert fan.value_cents == 900
    assert fan.erased
    assert fan.deleted
    with pytest.raises(Gone):
        fan.update(name="John again")
    with pytest.raises(Gone):
        fan.erase()


def test_a_deleted_fan_can_still_be_erased() -> None:
    fan = registered()
    fan.delete()
    fan.erase()
    assert replay(fan).erased
