"""A message goes to its fan's platform, decided when it is queued; what a platform cannot
carry is refused before anything is recorded (issue 20)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from adapters.postgres.event_store.mapper import decode_event, event_fields
from application.context import CommandContext
from application.delivery import SendJob
from application.delivery_service import DeliveryService
from application.fans import CreateFan, create_fan
from application.message_streams import load_message
from application.messages import QueueMessage, RecipientCache, queue_message
from application.sending import PlatformMessage, PlatformRoute, PlatformSendResult, TokenAnswer
from domain.inbound import InboundMessage
from domain.message import Message
from domain.platforms import CAPABILITIES, PlatformCannotMessage, check_can_message
from tests.support.fakes import CountingIds, InMemoryEventStore

BOTH = frozenset({"onlyfans", "fansly"})


@dataclass
class RecordingGateway:
    calls: list[PlatformMessage] = field(default_factory=list)

    async def send_message(self, message: PlatformMessage) -> PlatformSendResult:
        self.calls.append(message)
        return PlatformSendResult(outcome="sent", platform_message_id=f"p-{len(self.calls)}")


@dataclass
class RecordingLimiter:
    accounts: list[str] = field(default_factory=list)

    async def try_acquire(self, account: str) -> TokenAnswer:
        self.accounts.append(account)
        return TokenAnswer(wait=0.0)

    async def check(self) -> None:
        return None


async def fan_on(
    platform: str, store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext
) -> int:
    created = await create_fan(CreateFan(name="Ann", platform=platform), ctx, store=store, ids=ids)
    return created.fan.fan_id


async def queued_job(
    store: InMemoryEventStore, ids: CountingIds, ctx: CommandContext, fan_id: int
) -> tuple[SendJob, dict[str, object]]:
    await queue_message(
        QueueMessage(recipient_id=fan_id, content="Hello", platforms=BOTH),
        ctx,
        store=store,
        ids=ids,
    )
    entry = store.outbox[-1]
    return SendJob.from_body(entry.body, receive_count=1), entry.personal


def service(
    store: InMemoryEventStore,
    personal: dict[str, object],
    onlyfans: tuple[RecordingGateway, RecordingLimiter],
    others: dict[str, PlatformRoute],
) -> DeliveryService:
    async def no_campaign(_: int) -> str | None:
        return None

    async def open_personal(_: SendJob) -> dict[str, object]:
        return personal

    return DeliveryService(
        store,
        onlyfans[0],
        onlyfans[1],
        no_campaign,
        open_personal,  # type: ignore[arg-type]
        max_receive_count=4,
        retry_delays=(1.0,),
        other_platforms=others,
    )


def test_only_patreon_of_the_three_platforms_offers_no_direct_messages() -> None:
    assert {p: c.direct_messages for p, c in CAPABILITIES.items()} == {
        "onlyfans": True,
        "fansly": True,
        "patreon": False,
    }
    with pytest.raises(PlatformCannotMessage, match="patreon, whose API offers no direct"):
        check_can_message("patreon", 6, configured=BOTH)
    with pytest.raises(PlatformCannotMessage, match="no fansly gateway is configured"):
        check_can_message("fansly", 6, configured=frozenset({"onlyfans"}))
    check_can_message("fansly", 6, configured=BOTH)
    check_can_message("onlyfans", 6, configured=None)


async def test_a_message_to_a_fansly_fan_records_fansly_on_its_event_and_its_queue_body(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_on("fansly", store, ids, alice)
    job, _ = await queued_job(store, ids, alice, fan_id)

    assert job.platform == "fansly"
    assert store.outbox[-1].body["platform"] == "fansly"
    queued = [r.event for r in store.log if isinstance(r.event, Message.Queued)]
    assert [q.platform for q in queued] == ["fansly"]


async def test_a_message_to_a_patreon_member_is_refused_and_records_nothing(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    fan_id = await fan_on("patreon", store, ids, alice)
    before = len(store.log)

    with pytest.raises(PlatformCannotMessage) as refused:
        await queue_message(
            QueueMessage(recipient_id=fan_id, content="Hello", platforms=BOTH),
            alice,
            store=store,
            ids=ids,
        )

    assert refused.value.platform == "patreon"
    assert refused.value.field == "recipient_id"
    assert len(store.log) == before
    assert store.outbox == []


async def test_a_remembered_recipient_is_refused_once_its_platform_has_no_gateway_here(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    recipients = RecipientCache()
    fan_id = await fan_on("fansly", store, ids, alice)
    await queue_message(
        QueueMessage(recipient_id=fan_id, content="Hello", platforms=BOTH),
        alice,
        store=store,
        ids=ids,
        recipients=recipients,
    )
    assert recipients.get(alice.tenant, fan_id) is not None
    before = len(store.log)

    with pytest.raises(PlatformCannotMessage, match="no fansly gateway"):
        await queue_message(
            QueueMessage(recipient_id=fan_id, content="Again", platforms=frozenset({"onlyfans"})),
            alice,
            store=store,
            ids=ids,
            recipients=recipients,
        )
    assert len(store.log) == before


def test_a_queue_body_from_before_platforms_is_sent_as_onlyfans() -> None:
    body = {"messageId": "m", "tenant": "t", "recipientId": 1, "campaignId": None}
    assert SendJob.from_body(body, receive_count=1).platform == "onlyfans"


async def test_the_sender_calls_the_gateway_and_limiter_of_the_messages_platform_only(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    onlyfans = (RecordingGateway(), RecordingLimiter())
    fansly = (RecordingGateway(), RecordingLimiter())
    fan_id = await fan_on("fansly", store, ids, alice)
    job, personal = await queued_job(store, ids, alice, fan_id)

    delivered = await service(
        store, personal, onlyfans, {"fansly": PlatformRoute(*fansly)}
    ).deliver(job)

    assert delivered.happened == "sent"
    assert [c.idempotency_key for c in fansly[0].calls] == [job.message_id]
    assert fansly[1].accounts == [alice.tenant]
    assert onlyfans[0].calls == []
    assert onlyfans[1].accounts == []


async def test_a_message_whose_platform_lost_its_gateway_is_failed_with_the_reason_not_rerouted(
    store: InMemoryEventStore, ids: CountingIds, alice: CommandContext
) -> None:
    onlyfans = (RecordingGateway(), RecordingLimiter())
    fan_id = await fan_on("fansly", store, ids, alice)
    job, personal = await queued_job(store, ids, alice, fan_id)

    delivered = await service(store, personal, onlyfans, {}).deliver(job)

    assert delivered.happened == "unroutable"
    assert delivered.disposition.done
    assert delivered.failure == "no fansly gateway is configured: not sent"
    assert onlyfans[0].calls == []
    assert onlyfans[1].accounts == []
    message, _ = await load_message(store, job.message_id, tenant=alice.tenant)
    assert isinstance(message, Message)
    assert (message.status, message.failure_reason) == ("failed", delivered.failure)


def test_messages_stored_before_platforms_were_recorded_decode_as_onlyfans() -> None:
    message = Message.queue(
        message_id="00000000-0000-0000-0000-000000000001",
        tenant="t",
        conversation_id=1,
        fan_id=1,
        content="x",
        platform="fansly",
    )
    queued = message.collect_events()[0]
    stored = event_fields(queued)
    assert stored["platform"] == "fansly"
    del stored["platform"]
    decoded = decode_event("MessageQueued", queued.originator_id, 1, stored, 1)
    assert isinstance(decoded, Message.Queued)
    assert decoded.platform == "onlyfans"

    inbound = InboundMessage.receive(
        message_id="00000000-0000-0000-0000-000000000002",
        tenant="t",
        conversation_id=1,
        fan_id=1,
        content="hi",
        platform_message_id="p1",
        platform="fansly",
    )
    received = inbound.collect_events()[0]
    stored = event_fields(received)
    del stored["platform"]
    decoded_in = decode_event("InboundMessageReceived", received.originator_id, 1, stored, 1)
    assert isinstance(decoded_in, InboundMessage.Received)
    assert decoded_in.platform == "onlyfans"
