from __future__ import annotations

import uuid

from adapters.postgres.personal_data import PersonalDataCodec


def test_personal_fields_stored_in_clear_read_back_as_they_are() -> None:
    data = {"fan_id": 3, "content": "hi", "attachments": [], "price_cents": 0}
    plain, erased = PersonalDataCodec.reveal("MessageQueued", "message-x", uuid.uuid4(), data, {})
    assert (plain["content"], plain["attachments"], erased) == ("hi", [], ())


def test_personal_fields_absent_from_an_event_read_back_as_none() -> None:
    plain, erased = PersonalDataCodec.reveal("FanUpdated", "fan-1", uuid.uuid4(), {}, {})
    assert plain == dict.fromkeys(("name", "handle", "email", "notes"))
    assert erased == ()
