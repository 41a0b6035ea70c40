"""Message and Conversation rules, Given (events) / When (command) / Then (events or error).
No I/O."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.conversation import Conversation, conversation_stream_id
from domain.errors import IllegalState, InvalidValue
from domain.message import (
    DEFAULT_PRIORITY,
    MAX_ATTACHMENTS,
    MAX_CONTENT,
    MAX_PRICE_CENTS,
    MAX_URL,
    MIN_PRICE_CENTS,
    Message,
    attachment_type_of,
    legacy_message_stream_id,
    message_id_of,
    message_stream_id,
)

MESSAGE_ID = "5f0c8a4e-2a43-4c1e-9d6b-0e7f6a1b2c3d"
IMAGE = ("image", "https://cdn.example.com/a.jpg")

Step = Callable[[Message], Any]


def queued(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "tenant": "1",
        "conversation_id": 11,
        "fan_id": 7,
        "content": "Hello there",
    }
    fields.update(overrides)
    return Message.queue(**fields)


def replay(events: list[Any]) -> Message:
    rebuilt = None
    for item in events:
        rebuilt = item.mutate(rebuilt)
    assert isinstance(rebuilt, Message)
    return rebuilt


def given_message(*steps: Step) -> Message:
    """A message rebuilt from the events of being queued and then taken through ``steps``:
    the Given of a test, holding no pending events."""
    message = queued()
    for step in steps:
        step(message)
    return replay(message.collect_events())


def dispatched(message: Message) -> None:
    message.dispatch("normal")


def sent(message: Message) -> None:
    message.mark_sent("of-1")


def failed(message: Message) -> None:
    message.fail("platform said no")


def tried_and_failed(message: Message) -> None:
    message.fail("gave up: 503", attempted=True)


def read(message: Message) -> None:
    message.mark_read()


def requeued(message: Message) -> None:
    message.retry()


def event_types(message: Message) -> list[type[Any]]:
    return [type(item) for item in message.collect_events()]


# --- queueing -------------------------------------------------------------------------------


def test_a_message_stream_is_in_its_tenants_namespace_with_the_id_as_its_last_36_characters() -> (
    None
):
    one, other = message_stream_id("1", MESSAGE_ID), message_stream_id("2", MESSAGE_ID)

    assert one != other
    assert message_stream_id("a:b", MESSAGE_ID) != message_stream_id("a", MESSAGE_ID)
    assert {message_id_of(s) for s in (one, other, legacy_message_stream_id(MESSAGE_ID))} == {
        MESSAGE_ID
    }


@given(
    st.tuples(st.text(min_size=1, max_size=20), st.uuids()),
    st.tuples(st.text(min_size=1, max_size=20), st.uuids()),
)
def test_two_tenants_message_streams_meet_only_for_the_same_tenant_and_id(
    first: tuple[str, uuid.UUID], second: tuple[str, uuid.UUID]
) -> None:
    one = message_stream_id(first[0], str(first[1]))
    other = message_stream_id(second[0], str(second[1]))

    assert (one == other) == (first == second)
    assert message_id_of(one) == str(first[1])
    assert one != legacy_message_stream_id(str(second[1]))


def test_queueing_records_one_queued_event_on_the_messages_stream() -> None:
    message = queued(price_cents=500, attachments=[IMAGE], priority=9, campaign_id=3)

    [event] = message.collect_events()

    assert isinstance(event, Message.Queued)
    assert event.originator_id == message_stream_id("1", MESSAGE_ID) == f"message-1:{MESSAGE_ID}"
    assert event.originator_version == 1
    assert (event.message_id, event.tenant, event.conversation_id, event.fan_id) == (
        MESSAGE_ID,
        "1",
        11,
        7,
    )
    assert (event.content, event.price_cents, event.priority, event.campaign_id) == (
        "Hello there",
        500,
        9,
        3,
    )
    assert tuple(map(tuple, event.attachments)) == (IMAGE,)


def test_a_queued_message_is_outgoing_queued_free_normal_priority_and_not_yet_tried() -> None:
    message = queued()

    assert message.direction == "out"
    assert message.status == "queued"
    assert message.price_cents == 0
    assert message.attachments == ()
    assert message.priority == DEFAULT_PRIORITY
    assert message.campaign_id is None
    assert message.failure_reason is None
    assert (message.attempts, message.rounds) == (0, 1)


def test_a_missing_price_means_free() -> None:
    assert queued(price_cents=None).price_cents == 0


# --- content --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["", " ", "   \n\t ", "a\x00b", "\x00", "x" * (MAX_CONTENT + 1), None, 5, b"hi"],
    ids=["empty", "space", "whitespace", "nul-inside", "nul", "too-long", "none", "int", "bytes"],
)
def test_content_that_is_not_sendable_text_is_refused(content: object) -> None:
    with pytest.raises(InvalidValue) as error:
        queued(content=content)
    assert error.value.field == "content"


def test_content_is_kept_exactly_as_written_up_to_the_limit() -> None:
    assert queued(content="  hi there \n").content == "  hi there \n"
    assert queued(content="é" * MAX_CONTENT).content == "é" * MAX_CONTENT


# --- price ----------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [0, MIN_PRICE_CENTS, 1_000, MAX_PRICE_CENTS])
def test_a_message_is_free_or_priced_between_three_and_two_hundred_dollars(price: int) -> None:
    assert queued(price_cents=price).price_cents == price


@pytest.mark.parametrize("price", [1, 100, MIN_PRICE_CENTS - 1, MAX_PRICE_CENTS + 1, -1, -300])
def test_a_price_outside_the_ppv_range_is_refused(price: int) -> None:
    with pytest.raises(InvalidValue) as error:
        queued(price_cents=price)
    assert error.value.field == "price_cents"


@pytest.mark.parametrize("price", [True, False, 300.0, "300", [300]])
def test_a_price_that_is_not_an_integer_is_refused(price: object) -> None:
    with pytest.raises(InvalidValue) as error:
        queued(price_cents=price)
    assert error.value.field == "price_cents"


@given(st.integers())
def test_any_integer_price_is_accepted_exactly_when_free_or_within_the_range(price: int) -> None:
    allowed = price == 0 or MIN_PRICE_CENTS <= price <= MAX_PRICE_CENTS
    if allowed:
        assert queued(price_cents=price).price_cents == price
    else:
        with pytest.raises(InvalidValue):
            queued(price_cents=price)


# --- attachments ----------------------------------------------------------------------------


def test_attachments_of_every_type_over_https_are_kept_in_order() -> None:
    attachments = [
        ("video", "https://cdn.example.com/v.mp4?token=abc"),
        ("image", "https://cdn.example.com/a.jpg"),
        ("audio", "https://cdn.example.com:8443/s.mp3#t=3"),
        ("file", "https://files.example.com/doc.pdf"),
    ]

    assert queued(attachments=attachments).attachments == tuple(attachments)


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.example.com/a.jpg",
        "ftp://cdn.example.com/a.jpg",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "//cdn.example.com/a.jpg",
        "cdn.example.com/a.jpg",
        "https://",
        "https:///a.jpg",
        "https://:443/a.jpg",
        "https://user@/a.jpg",
        "https://[::1/a.jpg",
        "https://cdn.example.com/a b.jpg",
        "https://cdn.example.com/a\x00.jpg",
        "https://cdn.example.com/" + "a" * MAX_URL,
        "",
    ],
    ids=[
        "http",
        "ftp",
        "javascript",
        "data",
        "scheme-relative",
        "no-scheme",
        "https-nothing",
        "no-host",
        "port-no-host",
        "user-no-host",
        "broken-ipv6",
        "space",
        "nul",
        "too-long",
        "empty",
    ],
)
def test_a_media_url_that_is_not_an_https_url_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(InvalidValue) as error:
        queued(attachments=[("image", url)])
    assert error.value.field == "attachments"


@pytest.mark.parametrize("kind", ["gif", "IMAGE", "", "document"])
def test_an_unknown_attachment_type_is_refused(kind: str) -> None:
    with pytest.raises(InvalidValue) as error:
        queued(attachments=[(kind, "https://cdn.example.com/a.jpg")])
    assert error.value.field == "attachments"


def test_at_most_twenty_attachments() -> None:
    assert len(queued(attachments=[IMAGE] * MAX_ATTACHMENTS).attachments) == MAX_ATTACHMENTS

    with pytest.raises(InvalidValue) as error:
        queued(attachments=[IMAGE] * (MAX_ATTACHMENTS + 1))
    assert error.value.field == "attachments"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://cdn.example.com/a.jpg", "image"),
        ("https://cdn.example.com/a.JPEG", "image"),
        ("https://cdn.example.com/a.png?w=100&h=100", "image"),
        ("https://cdn.example.com/a.webp#top", "image"),
        ("https://cdn.example.com/a.heic", "image"),
        ("https://cdn.example.com/clip.mp4", "video"),
        ("https://cdn.example.com/clip.MOV?x=.jpg", "video"),
        ("https://cdn.example.com/clip.webm", "video"),
        ("https://cdn.example.com/song.mp3", "audio"),
        ("https://cdn.example.com/song.m4a", "audio"),
        ("https://cdn.example.com/song.ogg", "audio"),
        ("https://cdn.example.com/doc.pdf", "file"),
        ("https://cdn.example.com/a.jpg.zip", "file"),
        ("https://cdn.example.com/jpg", "file"),
        ("https://cdn.example.com/a.jpg/", "file"),
        ("https://cdn.example.com/", "file"),
    ],
)
def test_the_attachment_type_of_a_bare_url_follows_its_extension(url: str, kind: str) -> None:
    assert attachment_type_of(url) == kind


# --- priority -------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [0, 11, -1, True, False, 5.0, "5", None])
def test_a_priority_outside_one_to_ten_or_not_an_integer_is_refused(priority: object) -> None:
    with pytest.raises(InvalidValue) as error:
        queued(priority=priority)
    assert error.value.field == "priority"


@pytest.mark.parametrize("priority", [1, 10])
def test_the_priority_bounds_are_accepted(priority: int) -> None:
    assert queued(priority=priority).priority == priority


@pytest.mark.parametrize(
    ("priority", "queue"),
    [(1, "normal"), (5, "normal"), (7, "normal"), (8, "high"), (9, "high"), (10, "high")],
)
def test_priorities_of_eight_and_above_go_to_the_high_priority_queue(
    priority: int, queue: str
) -> None:
    assert queued(priority=priority).queue_name() == queue


# --- dispatch -------------------------------------------------------------------------------


def test_dispatching_a_queued_message_records_the_queue_it_went_to() -> None:
    message = given_message()

    assert message.dispatch("high") is True

    [event] = message.collect_events()
    assert isinstance(event, Message.Dispatched)
    assert event.queue == "high"
    assert event.originator_version == 2
    assert message.status == "dispatched"


def test_dispatching_again_records_nothing() -> None:
    message = given_message(dispatched)

    assert message.dispatch("normal") is False

    assert message.collect_events() == []
    assert message.status == "dispatched"


@pytest.mark.parametrize(
    ("steps", "status"),
    [((sent,), "sent"), ((failed,), "failed"), ((sent, read), "read")],
    ids=["sent", "failed", "read"],
)
def test_only_a_queued_message_is_dispatched(steps: tuple[Step, ...], status: str) -> None:
    message = given_message(*steps)

    assert message.dispatch("normal") is False

    assert message.collect_events() == []
    assert message.status == status


# --- sent -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [(), (dispatched,), (failed,), (dispatched, failed)],
    ids=["queued", "dispatched", "failed", "dispatched-then-failed"],
)
def test_a_message_not_yet_sent_is_marked_sent(steps: tuple[Step, ...]) -> None:
    message = given_message(*steps)

    assert message.mark_sent("of-42") is True

    [event] = message.collect_events()
    assert isinstance(event, Message.Sent)
    assert event.platform_message_id == "of-42"
    assert message.status == "sent"
    assert message.failure_reason is None


@pytest.mark.parametrize(
    ("steps", "status"), [((sent,), "sent"), ((sent, read), "read")], ids=["sent", "read"]
)
def test_marking_a_sent_or_read_message_sent_records_nothing(
    steps: tuple[Step, ...], status: str
) -> None:
    message = given_message(*steps)

    assert message.mark_sent("of-2") is False

    assert message.collect_events() == []
    assert message.status == status


# --- failed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [(), (dispatched,)], ids=["queued", "dispatched"])
def test_an_unsent_message_fails_with_its_reason(steps: tuple[Step, ...]) -> None:
    message = given_message(*steps)

    assert message.fail("rate limited three times") is True

    [event] = message.collect_events()
    assert isinstance(event, Message.Failed)
    assert event.reason == "rate limited three times"
    assert (message.status, message.failure_reason) == ("failed", "rate limited three times")


def test_a_failure_reason_is_cut_to_500_characters_and_never_empty() -> None:
    long = given_message()
    long.fail("x" * 600)
    blank = given_message()
    blank.fail("")

    assert long.failure_reason == "x" * 500
    assert blank.failure_reason == "unknown"


@pytest.mark.parametrize(
    ("steps", "status"),
    [((sent,), "sent"), ((sent, read), "read"), ((failed,), "failed")],
    ids=["sent", "read", "failed"],
)
def test_failing_a_sent_read_or_failed_message_records_nothing(
    steps: tuple[Step, ...], status: str
) -> None:
    message = given_message(*steps)

    assert message.fail("too late") is False

    assert message.collect_events() == []
    assert message.status == status


# --- retry ----------------------------------------------------------------------------------


def test_retrying_a_failed_message_requeues_it_without_counting_a_try_at_the_platform() -> None:
    message = given_message(dispatched, tried_and_failed)

    message.retry()

    [event] = message.collect_events()
    assert isinstance(event, Message.Requeued)
    assert (message.status, message.failure_reason) == ("queued", None)
    assert (message.attempts, message.rounds) == (1, 2)


def test_each_retry_puts_the_message_on_its_way_again_and_it_can_be_dispatched() -> None:
    message = given_message(failed, requeued, dispatched, failed, requeued)

    assert (message.attempts, message.rounds) == (0, 3)
    assert message.status == "queued"
    assert message.dispatch("normal") is True


def test_each_try_at_the_platform_counts_one_attempt_whatever_came_of_it() -> None:
    message = given_message(dispatched)
    before = message.version

    assert message.attempt_failed("503 unavailable") is True
    assert message.attempt_failed("timeout") is True
    assert message.fail("gave up: timeout", attempted=True) is True
    message.retry()
    message.dispatch("normal")
    assert message.mark_sent("of-2") is True

    events = message.collect_events()
    assert [type(e) for e in events] == [
        Message.AttemptFailed,
        Message.AttemptFailed,
        Message.Failed,
        Message.Requeued,
        Message.Dispatched,
        Message.Sent,
    ]
    assert (message.attempts, message.rounds, message.status) == (4, 2, "sent")
    assert [e.originator_version for e in events] == list(range(before + 1, before + 7))


def test_giving_up_without_a_try_counts_no_attempt() -> None:
    # The relay could not reach the queue, the recipient was erased, a dead letter was found.
    message = given_message(dispatched, failed)

    assert (message.status, message.attempts) == ("failed", 0)


@pytest.mark.parametrize("steps", [(sent,), (sent, read)], ids=["sent", "read"])
def test_a_failed_try_is_recorded_only_while_the_message_may_still_be_tried(
    steps: tuple[Step, ...],
) -> None:
    message = given_message(*steps)

    assert message.attempt_failed("503") is False
    assert message.collect_events() == []


def test_a_try_at_a_message_failed_yet_still_on_the_queue_counts() -> None:
    # The relay gave up on a send that did reach the queue, or a dead letter was redriven.
    message = given_message(dispatched, failed)

    assert message.attempt_failed("503") is True
    assert (message.status, message.attempts) == ("failed", 1)


def test_outcomes_stored_before_they_said_whether_they_were_tries_decode_as_they_were() -> None:
    from adapters.postgres.event_store.mapper import decode_event

    stream = f"message-1:{MESSAGE_ID}"
    at = "2025-11-01T12:00:00+00:00"
    old_sent = decode_event(
        "MessageSent", stream, 3, {"platform_message_id": "x", "timestamp": at}, 1
    )
    old_failed = decode_event("MessageFailed", stream, 3, {"reason": "timeout", "timestamp": at}, 1)

    assert isinstance(old_sent, Message.Sent)
    assert old_sent.attempted is True
    assert isinstance(old_failed, Message.Failed)
    assert old_failed.attempted is False


@pytest.mark.parametrize(
    ("steps", "status"),
    [((), "queued"), ((dispatched,), "dispatched"), ((sent,), "sent"), ((sent, read), "read")],
    ids=["queued", "dispatched", "sent", "read"],
)
def test_only_a_failed_message_can_be_retried(steps: tuple[Step, ...], status: str) -> None:
    message = given_message(*steps)

    with pytest.raises(IllegalState):
        message.retry()

    assert message.collect_events() == []
    assert (message.status, message.rounds) == (status, 1)


# --- read -----------------------------------------------------------------------------------


def test_a_sent_message_is_marked_read() -> None:
    message = given_message(dispatched, sent)

    assert message.mark_read() is True

    [event] = message.collect_events()
    assert isinstance(event, Message.Read)
    assert message.status == "read"


def test_marking_a_read_message_read_again_records_nothing() -> None:
    message = given_message(sent, read)

    assert message.mark_read() is False

    assert message.collect_events() == []


@pytest.mark.parametrize(
    "steps", [(), (dispatched,), (failed,)], ids=["queued", "dispatched", "failed"]
)
def test_a_message_not_sent_cannot_be_marked_read(steps: tuple[Step, ...]) -> None:
    message = given_message(*steps)

    with pytest.raises(IllegalState):
        message.mark_read()

    assert message.collect_events() == []


# --- replay ---------------------------------------------------------------------------------


def test_replaying_the_events_rebuilds_the_same_state() -> None:
    message = queued(price_cents=1_500, attachments=[IMAGE], priority=8, campaign_id=4)
    message.dispatch("high")
    message.fail("timeout", attempted=True)
    message.retry()
    message.dispatch("high")
    message.mark_sent("of-9")
    message.mark_read()
    events = message.collect_events()

    rebuilt = replay(events)

    assert event_types(rebuilt) == []
    assert [type(item) for item in events] == [
        Message.Queued,
        Message.Dispatched,
        Message.Failed,
        Message.Requeued,
        Message.Dispatched,
        Message.Sent,
        Message.Read,
    ]
    assert [item.originator_version for item in events] == list(range(1, 8))
    state = {k: v for k, v in vars(message).items() if k != "_pending_events"}
    assert {k: v for k, v in vars(rebuilt).items() if k != "_pending_events"} == state
    assert (rebuilt.status, rebuilt.attempts, rebuilt.rounds, rebuilt.version) == ("read", 2, 2, 7)


def test_a_message_whose_fan_was_erased_still_replays_without_its_personal_data() -> None:
    message = queued(attachments=[IMAGE])
    message.dispatch("normal")
    queued_event, dispatched_event = message.collect_events()
    # What the store reads back once the fan's key is gone: the personal fields are None.
    erased = dataclasses.replace(queued_event, content=None, attachments=None)

    rebuilt = replay([erased, dispatched_event])

    assert (rebuilt.content, rebuilt.attachments) == (None, ())
    assert (rebuilt.status, rebuilt.version) == ("dispatched", 2)
    assert rebuilt.mark_sent("of-1") is True
    assert rebuilt.mark_read() is True


# --- conversation ---------------------------------------------------------------------------


def test_starting_a_conversation_records_one_event_on_its_stream() -> None:
    conversation = Conversation.start(conversation_id=42, tenant="1", fan_id=7, platform="onlyfans")

    [event] = conversation.collect_events()

    assert isinstance(event, Conversation.Started)
    assert event.originator_id == conversation_stream_id(42) == "conversation-42"
    assert (event.conversation_id, event.tenant, event.fan_id, event.platform) == (
        42,
        "1",
        7,
        "onlyfans",
    )


def test_replaying_a_conversation_rebuilds_the_same_state() -> None:
    conversation = Conversation.start(conversation_id=42, tenant="1", fan_id=7, platform="fansly")

    rebuilt = None
    for item in conversation.collect_events():
        rebuilt = item.mutate(rebuilt)

    assert isinstance(rebuilt, Conversation)
    assert (rebuilt.id, rebuilt.version) == ("conversation-42", 1)
    assert (rebuilt.conversation_id, rebuilt.tenant, rebuilt.fan_id, rebuilt.platform) == (
        42,
        "1",
        7,
        "fansly",
    )


def test_the_high_priority_threshold_can_be_moved() -> None:
    assert queued(priority=6).queue_name(high_priority_from=6) == "high"
    assert queued(priority=9).queue_name(high_priority_from=10) == "normal"
