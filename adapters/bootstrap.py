"""The composition root: builds every adapter once, for the API, the workers and the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis
import structlog

from adapters.config import Settings
from adapters.crypto import MasterKey, MasterKeyError
from adapters.llm import ChatCompletionsWriter
from adapters.postgres.analytics_read_model import AnalyticsReadModel
from adapters.postgres.api_keys import PostgresMemberKeys
from adapters.postgres.audit_log import PostgresAuditLog
from adapters.postgres.campaign_read_model import PostgresCampaignReadModel
from adapters.postgres.churn_store import PostgresChurnStore
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.fan_read_model import PostgresFanReadModel
from adapters.postgres.idempotency_keys import IdempotencyKeys
from adapters.postgres.ids import SequenceIds
from adapters.postgres.imports import PostgresImportStore
from adapters.postgres.imports_index import LazyIndexHasher
from adapters.postgres.imports_read_model import PostgresImportJobsReadModel
from adapters.postgres.key_writes import KeyWrites
from adapters.postgres.listen import Notifier
from adapters.postgres.member_analytics_read_model import MemberAnalyticsReadModel
from adapters.postgres.messaging_read_model import PostgresMessagingReadModel
from adapters.postgres.outbox import PostgresOutbox
from adapters.postgres.people_read_model import PostgresPeopleReadModel
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.platform_connections import PostgresConnections
from adapters.postgres.platform_sync import PostgresSyncCheckpoints, PostgresWebhookReceipts
from adapters.postgres.pool import create_pool
from adapters.postgres.pricing_read_model import PricingReadModel
from adapters.postgres.projection_store import PostgresProjectionStore
from adapters.postgres.queue import PostgresQueue
from adapters.postgres.script_read_model import PostgresScriptReadModel
from adapters.postgres.sequence_read_model import PostgresSequenceReadModel
from adapters.postgres.subject_keys import SubjectKeys
from adapters.postgres.suggestions_read_model import PostgresSuggestionIndex
from adapters.postgres.workspace_read_model import PostgresWorkspaceReadModel
from adapters.queue_status import QueueStatusReader
from application.audit import AuditLog
from application.fan_queries import FanReadModel
from application.message_queries import MessagingReadModel
from application.people_queries import PeopleReadModel
from application.queue import MessageQueue
from application.sensitive_words import SensitiveWordsCache
from projections.analytics_campaign_revenue import CampaignRevenueProjection
from projections.analytics_cohorts import FanCohortsProjection
from projections.analytics_fan_revenue import FanRevenueProjection
from projections.analytics_members import MemberAnalyticsProjection
from projections.base import Projection
from projections.campaign_variants import CampaignVariantsProjection
from projections.campaigns import CampaignMetricsProjection, CampaignsProjection
from projections.churn_activity import ChurnActivityProjection
from projections.conversations import ConversationsProjection
from projections.fans import FansProjection
from projections.imports import ImportJobsProjection
from projections.messages import MessagesProjection
from projections.people import PeopleProjection
from projections.pricing import PricingProjection
from projections.scripts import ScriptsProjection, SensitiveWordsProjection
from projections.sequences import SequencesProjection
from projections.suggestions import SuggestionsProjection
from projections.workspaces import WorkspacesProjection


@dataclass
class Container:
    settings: Settings
    pool: asyncpg.Pool
    keys: SubjectKeys
    personal: PersonalDataCodec
    events: PostgresEventStore
    ids: SequenceIds
    projection_store: PostgresProjectionStore
    key_writes: KeyWrites
    workspaces: PostgresWorkspaceReadModel
    member_keys: PostgresMemberKeys
    fans: FanReadModel
    people: PeopleReadModel
    messaging: MessagingReadModel
    campaigns: PostgresCampaignReadModel
    audit: AuditLog
    imports: PostgresImportStore
    import_jobs: PostgresImportJobsReadModel
    analytics: AnalyticsReadModel
    member_analytics: MemberAnalyticsReadModel
    pricing: PricingReadModel
    outbox: PostgresOutbox
    queue: MessageQueue
    queue_status: QueueStatusReader
    redis: redis.Redis | None
    idempotency: IdempotencyKeys
    scripts: PostgresScriptReadModel
    connections: PostgresConnections
    sync_checkpoints: PostgresSyncCheckpoints
    webhook_receipts: PostgresWebhookReceipts
    sequences: PostgresSequenceReadModel
    suggestions: PostgresSuggestionIndex
    # Reply drafts from a language model, if one is configured (CRM_LLM_*).
    reply_writer: ChatCompletionsWriter | None
    churn: PostgresChurnStore
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    # Each account's sensitive words as last read from the log, checked by every send.
    words: SensitiveWordsCache = field(default_factory=SensitiveWordsCache)

    async def close(self) -> None:
        """Each step is bounded: a shutdown that waits forever on one stuck connection (a
        dependency gone silent, a task that never gave its connection back) never ends."""
        await _bounded("queue status", self.queue_status.close())
        for closer in reversed(self._closers):
            await _bounded(getattr(closer, "__qualname__", "closer"), closer())
        if self.redis is not None:
            await _bounded("redis", self.redis.aclose())
        await _bounded("projection store", self.projection_store.close())
        if not await _bounded("pool", self.pool.close()):
            self.pool.terminate()


CLOSE_SECONDS = 10.0
log = structlog.get_logger(__name__)


async def _bounded(what: str, closing: Awaitable[Any]) -> bool:
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await closing
    except TimeoutError:
        log.warning("shutdown step timed out", step=what, seconds=CLOSE_SECONDS)
        return False
    return True


def core_projections() -> list[Projection]:
    return [
        FansProjection(),
        ConversationsProjection(),
        MessagesProjection(),
        CampaignsProjection(),
        CampaignMetricsProjection(),
        CampaignVariantsProjection(),
        ImportJobsProjection(),
        ScriptsProjection(),
        SensitiveWordsProjection(),
        WorkspacesProjection(),
        SequencesProjection(),
        PeopleProjection(),
        SuggestionsProjection(),
    ]


def analytics_projections() -> list[Projection]:
    """Views for analysts, built only from events the log already holds."""
    return [
        FanRevenueProjection(),
        FanCohortsProjection(),
        CampaignRevenueProjection(),
        MemberAnalyticsProjection(),
        PricingProjection(),
        ChurnActivityProjection(),
    ]


def all_projections() -> list[Projection]:
    """Every projection, by which `crm projections rebuild NAME` and the worker know it."""
    return [*core_projections(), *analytics_projections()]


def master_keys(settings: Settings) -> tuple[MasterKey, list[MasterKey]]:
    if not settings.master_key:
        raise MasterKeyError(
            "CRM_MASTER_KEY is not set: personal data is stored encrypted and the service "
            "will not start without its master key (`crm keys generate` makes one; "
            "`crm dev` keeps one in its data folder)"
        )
    return MasterKey.parse(settings.master_key), [
        MasterKey.parse(key) for key in settings.previous_master_keys
    ]


async def build(settings: Settings) -> Container:
    """Wire every adapter. Refuses (MasterKeyError) before writing anything if the master key
    is missing or is not the one this database's data keys are wrapped with."""
    master, previous = master_keys(settings)
    pool = await create_pool(
        settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    keys = SubjectKeys(pool, master, previous)
    notifier = Notifier(pool)
    personal = PersonalDataCodec(keys)
    imports = PostgresImportStore(pool, personal, [master, *previous], notifier)
    try:
        await keys.verify_master_key()
        # Fans made before handles were unique claim theirs, once (migrations/029).
        await imports.claim_handles_of_older_fans()
    except BaseException:
        await pool.close()
        raise
    events = PostgresEventStore(
        pool, personal, notifier, LazyIndexHasher(pool, [master, *previous])
    )
    cache = (
        # Blocking: a burst of concurrent senders waits for a connection instead of failing
        # (redis-py's plain pool raises past its limit).
        # from_pool: the client owns the pool and closes it with itself (passing
        # connection_pool= leaves it open, and an embedded redis-server then never stops).
        redis.Redis.from_pool(
            redis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=200, timeout=5
            )
        )
        if settings.redis_url
        else None
    )
    closers: list[Callable[[], Awaitable[Any]]] = [notifier.close]
    queue = await _queue(settings, pool, notifier, closers)
    projection_store = PostgresProjectionStore(pool, events, settings.database_url)
    return Container(
        settings=settings,
        pool=pool,
        keys=keys,
        personal=personal,
        events=events,
        ids=SequenceIds(pool),
        projection_store=projection_store,
        key_writes=KeyWrites(pool),
        workspaces=PostgresWorkspaceReadModel(pool),
        member_keys=PostgresMemberKeys(pool),
        fans=PostgresFanReadModel(pool),
        people=PostgresPeopleReadModel(pool),
        messaging=PostgresMessagingReadModel(pool),
        campaigns=PostgresCampaignReadModel(
            pool, projection_store, events, catch_up_timeout=settings.read_your_writes_timeout
        ),
        imports=imports,
        import_jobs=PostgresImportJobsReadModel(pool),
        analytics=AnalyticsReadModel(pool),
        member_analytics=MemberAnalyticsReadModel(pool),
        pricing=PricingReadModel(pool),
        audit=PostgresAuditLog(pool, personal),
        outbox=PostgresOutbox(pool),
        queue=queue,
        queue_status=QueueStatusReader(queue, pool, cache),
        redis=cache,
        idempotency=IdempotencyKeys(pool, ttl_seconds=settings.idempotency_ttl_seconds),
        scripts=PostgresScriptReadModel(pool),
        connections=PostgresConnections(pool, [master, *previous]),
        sync_checkpoints=PostgresSyncCheckpoints(pool),
        webhook_receipts=PostgresWebhookReceipts(),
        sequences=PostgresSequenceReadModel(pool),
        suggestions=PostgresSuggestionIndex(pool),
        reply_writer=_reply_writer(settings, closers),
        churn=PostgresChurnStore(pool),
        _closers=closers,
    )


def _reply_writer(
    settings: Settings, closers: list[Callable[[], Awaitable[Any]]]
) -> ChatCompletionsWriter | None:
    if not (settings.llm_url and settings.llm_api_key and settings.llm_model):
        return None
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.llm_timeout))
    closers.append(client.aclose)
    return ChatCompletionsWriter(
        client,
        url=settings.llm_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout=settings.llm_timeout,
    )


async def _queue(
    settings: Settings,
    pool: asyncpg.Pool,
    notifier: Notifier,
    closers: list[Callable[[], Awaitable[Any]]],
) -> MessageQueue:
    """The Postgres queue on one machine; Amazon SQS (or moto's server) when configured."""
    if settings.queue_backend == "sqs":
        from adapters.sqs import open_sqs_queue

        queue, close = await open_sqs_queue(settings)
        closers.append(close)
        return queue
    postgres_queue = PostgresQueue(
        pool,
        visibility_timeout=settings.visibility_timeout,
        max_receive_count=settings.max_receive_count,
        notifier=notifier,
    )
    closers.append(postgres_queue.close)
    return postgres_queue
