"""What the live stream sends for log events, and which filters it accepts (no I/O)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.live.builder import FactsCache, UpdateBuilder
from adapters.live.subscription import BadFilter, Filters
from adapters.live.updates import MessageFacts, fan_update, message_update, sequence_update
from adapters.observability import redact_tickets
from application.ports import EventMetadata, RecordedEvent
from domain.enrolment import Enrolment, enrolment_stream_id
from domain.fan import Fan
from domain.message import Message, message_stream_id

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TENANT = "user-live"


def recorded(stream_id: str, event: object, position: int = 7) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        transaction_id=99,
        event_id=uuid.uuid4(),
        stream_id=stream_id,
        stream_type=stream_id.split("-")[0],
        version=2,
        event_type=type(event).__name__,
        event=event,  # type: ignore[arg-type]
        metadata=EventMetadata(tenant=TENANT, actor="t", correlation_id="c", causation_id="c"),
        recorded_at=NOW,
    )


def test_a_purchase_is_a_message_update_with_its_revenue_and_the_ids_a_ui_needs() -> None:
    message_id = str(uuid.uuid4())
    stream = message_stream_id(TENANT, message_id)
    event = Message.Purchased(
        originator_id=stream, originator_version=5, timestamp=NOW, amount_cents=900
    )
    update = message_update(recorded(stream, event), MessageFacts(3, 4, 5, 900))
    assert update == {
        "type": "message.updated",
        "position": 7,
        "messageId": message_id,
        "conversationId": 3,
        "fanId": 4,
        "campaignId": 5,
        "status": "purchased",
        "priceCents": 900,
        "revenueCents": 900,
        "at": NOW.isoformat(),
    }


def test_a_fan_erased_is_told_and_an_erased_fans_update_carries_no_personal_field() -> None:
    erased = fan_update(
        recorded("fan-12", Fan.Erased(originator_id="fan-12", originator_version=3, timestamp=NOW))
    )
    assert erased == {"type": "fan.erased", "position": 7, "fanId": 12, "at": NOW.isoformat()}
    # How the store decodes an update of a fan erased since: its personal fields are None.
    updated = Fan.Updated(
        originator_id="fan-12",
        originator_version=2,
        timestamp=NOW,
        name=None,
        handle=None,
        email=None,
        value_cents=0,
        tags=(),
        notes=None,
    )
    update = fan_update(recorded("fan-12", updated))
    assert update is not None
    assert (update["name"], update["handle"]) == (None, None)
    assert "email" not in update
    assert "notes" not in update


@pytest.mark.parametrize(
    ("conversation", "campaign", "types"),
    [("x", None, None), (None, "-1", None), (None, None, "message.sent"), (None, None, ",")],
)
def test_bad_filters_are_refused(
    conversation: str | None, campaign: str | None, types: str | None
) -> None:
    with pytest.raises(BadFilter):
        Filters.parse(conversation, campaign, types)


def test_filters_keep_what_was_asked_and_the_accounts_queue_status() -> None:
    chosen = Filters.parse("3", None, "message.updated,queue.status")
    assert chosen.admit({"type": "message.updated", "conversationId": 3})
    assert not chosen.admit({"type": "message.updated", "conversationId": 4})
    assert not chosen.admit({"type": "fan.updated", "fanId": 1})
    assert chosen.admit({"type": "queue.status"})


def test_a_ticket_in_a_logged_url_is_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", "/api/live?ticket=abc-DEF_1&types=fan.updated"),
        None,
    )
    assert redact_tickets(record)
    assert "abc-DEF_1" not in record.getMessage()
    assert "/api/live?ticket=<redacted>&types=fan.updated" in record.getMessage()


def test_a_fans_run_through_a_sequence_is_told_step_by_step() -> None:
    later = NOW + timedelta(days=1)
    run = Enrolment.enrol(
        sequence_id=8,
        fan_id=42,
        tenant=TENANT,
        entry=1,
        trigger="fanCreated",
        now=NOW,
        first_due=NOW,
    )
    run.record_step(step=0, message_id="m-1", now=NOW, next_due=later)
    run.exit("replied", later)
    enrolled, step, exited = run.collect_events()
    stream = enrolment_stream_id(8, 42, 1)
    found = [sequence_update(recorded(stream, event)) for event in (enrolled, step, exited)]
    updates = [update for update in found if update is not None]
    assert len(updates) == 3
    ids = {"type": "sequence.progress", "position": 7, "sequenceId": 8, "fanId": 42, "entry": 1}
    assert all(ids.items() <= update.items() for update in updates)
    assert [u["change"] for u in updates] == ["enrolled", "stepSent", "exited"]
    assert updates[0]["nextDueAt"] == NOW.isoformat()
    assert (updates[1]["step"], updates[1]["messageId"]) == (0, "m-1")
    assert updates[1]["nextDueAt"] == later.isoformat()
    assert updates[2]["reason"] == "replied"


async def test_the_hubs_builder_tags_a_runs_progress_with_its_account() -> None:
    run = Enrolment.enrol(
        sequence_id=3,
        fan_id=5,
        tenant=TENANT,
        entry=2,
        trigger="tagAdded",
        now=NOW,
        first_due=NOW,
    )
    (enrolled,) = run.collect_events()
    # Nothing here reads the store or the views: a run's events carry all the update needs.
    builder = UpdateBuilder(FactsCache(store=None), messaging=None)  # type: ignore[arg-type]
    (tagged,) = await builder.build([recorded(enrolment_stream_id(3, 5, 2), enrolled)])
    assert tagged.tenant == TENANT
    assert (tagged.update["type"], tagged.update["change"]) == ("sequence.progress", "enrolled")
