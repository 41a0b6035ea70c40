"""Events decoded straight from their stored JSON text (the replay's path) are the events the
dict path decodes: envelope, personal fields sealed, erased, in clear or absent."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto import seal
from adapters.postgres.event_store.mapper import (
    UnknownEventType,
    decode_event,
    decode_event_json,
    encode_json,
    event_fields,
    event_type_of,
)
from adapters.postgres.personal_data import PII, PersonalDataCodec
from domain.base import DomainEvent
from domain.events import PERSONAL_DATA
from domain.fan import Fan, fan_stream_id
from domain.message import Message


def fan_history(fan_id: int = 42) -> list[DomainEvent]:
    fan = Fan.register(
        fan_id=fan_id,
        tenant="user-1",
        platform_id="of-42",
        name='Ann "the fan" Smith',
        handle="ann_42",
        email="ann@example.com",
        value_cents=1234,
        tags=["vip", "new"],
        notes="likes\nnew lines and ünïcode",
    )
    fan.update(email=None, notes=None, value_cents=99)
    fan.open_conversation(7)
    fan.delete()
    return list(fan.collect_events())


def queued_message(fan_id: int = 42) -> list[DomainEvent]:
    message = Message.queue(
        message_id=str(uuid.uuid4()),
        tenant="user-1",
        conversation_id=7,
        fan_id=fan_id,
        content="Hi Ann",
        price_cents=500,
        attachments=[("image", "https://cdn.example.com/1.jpg")],
    )
    message.dispatch("normal")
    return list(message.collect_events())


def stored(event: DomainEvent, aead: AESGCM | None, event_id: uuid.UUID) -> dict[str, Any]:
    """The event's fields as the store writes them: personal ones sealed when ``aead``."""
    event_type = event_type_of(event)
    fields = event_fields(event)
    spec = PERSONAL_DATA.get(event_type)
    if aead is not None and spec is not None:
        subject = (
            event.originator_id
            if spec.subject_field is None
            else fan_stream_id(fields[spec.subject_field])
        )
        values = {name: fields.pop(name) for name in spec.fields}
        context = f"{subject}|{event_id}".encode()
        fields[PII] = seal(aead, msgspec.json.encode(values), context)
    return fields


def both_ways(
    event: DomainEvent, fields: dict[str, Any], event_id: uuid.UUID, keys: dict[str, Any]
) -> tuple[DomainEvent, tuple[str, ...], DomainEvent, tuple[str, ...]]:
    """(event, erased) decoded from the JSON text, then from a dict, as the store does."""
    event_type = event_type_of(event)
    stream_id, version = event.originator_id, event.originator_version
    # jsonb's own text form: a space after every colon and comma.
    text = msgspec.json.format(encode_json(fields), indent=0).replace("\n", " ")
    sealed = PersonalDataCodec.sealed_in(event_type, stream_id, text)
    before, after, erased = PersonalDataCodec.reveal_json(event_type, sealed, event_id, keys)
    from_text = decode_event_json(event_type, stream_id, version, text, before, after)
    plain, erased_too = PersonalDataCodec.reveal(
        event_type, stream_id, event_id, dict(fields), keys
    )
    return from_text, erased, decode_event(event_type, stream_id, version, plain, 1), erased_too


@pytest.mark.parametrize("events", [fan_history(), queued_message()], ids=["fan", "message"])
def test_sealed_personal_fields_decode_from_text_as_from_a_dict(events: list[DomainEvent]) -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    keys: dict[str, Any] = {fan_stream_id(42): aead}
    for event in events:
        event_id = uuid.uuid4()
        from_text, erased, from_dict, erased_too = both_ways(
            event, stored(event, aead, event_id), event_id, keys
        )
        assert from_text == from_dict == event
        assert erased == erased_too == ()


@pytest.mark.parametrize("events", [fan_history(), queued_message()], ids=["fan", "message"])
def test_erased_personal_fields_decode_from_text_as_none(events: list[DomainEvent]) -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    keys: dict[str, Any] = {fan_stream_id(42): None}  # the key was destroyed
    for event in events:
        event_id = uuid.uuid4()
        from_text, erased, from_dict, erased_too = both_ways(
            event, stored(event, aead, event_id), event_id, keys
        )
        assert from_text == from_dict
        assert erased == erased_too
        spec = PERSONAL_DATA.get(event_type_of(event))
        if spec is not None:
            assert erased == spec.fields
            assert all(getattr(from_text, name) is None for name in spec.fields)


@pytest.mark.parametrize("events", [fan_history(), queued_message()], ids=["fan", "message"])
def test_personal_fields_in_clear_decode_from_text_as_stored(events: list[DomainEvent]) -> None:
    for event in events:
        event_id = uuid.uuid4()
        from_text, erased, from_dict, _ = both_ways(
            event, stored(event, None, event_id), event_id, {}
        )
        assert from_text == from_dict == event
        assert erased == ()


def test_personal_fields_absent_from_the_stored_text_read_back_as_none() -> None:
    event = fan_history()[1]  # FanUpdated
    fields = {k: v for k, v in event_fields(event).items() if k not in ("name", "handle")}
    event_id = uuid.uuid4()
    from_text, erased, from_dict, _ = both_ways(event, fields, event_id, {})
    assert from_text == from_dict
    assert (from_text.name, from_text.handle, erased) == (None, None, ())


def test_the_envelope_comes_from_the_row_as_through_a_dict() -> None:
    event = fan_history()[0]
    fields = event_fields(event) | {"originator_id": "fan-666", "originator_version": 9}
    from_text = decode_event_json("FanCreated", "fan-42", 1, encode_json(fields))
    from_dict = decode_event("FanCreated", "fan-42", 1, fields, 1)
    assert from_text == from_dict
    assert (from_text.originator_id, from_text.originator_version) == ("fan-42", 1)
    # Stream ids that JSON must escape are written escaped.
    deleted = fan_history()[-1]
    odd = decode_event_json("FanDeleted", 'fan-"1"\\', 3, encode_json(event_fields(deleted)))
    assert (odd.originator_id, odd.originator_version) == ('fan-"1"\\', 3)


def test_an_unknown_event_type_is_refused_from_text_as_from_a_dict() -> None:
    with pytest.raises(UnknownEventType):
        decode_event_json("NoSuchEvent", "fan-1", 1, "{}")
    with pytest.raises(UnknownEventType):
        decode_event("NoSuchEvent", "fan-1", 1, {}, 1)
