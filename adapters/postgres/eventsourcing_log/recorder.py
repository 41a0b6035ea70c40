"""fancrm's log as eventsourcing's ApplicationRecorder: read-only, numbered by the event chain.

Notification ids are the chain's ``seq`` (adapters/postgres/event_store/notifications.py says
why: commit order, ids that only grow, no late commit slipped in behind a reader), so only
sealed events are notified. Each notification carries its event decoded as the store decodes
it (stable type names, upcasting, personal fields opened by the master key if one is given,
never an erased fan's), and ``LogMapper`` hands that event on. Topics are the event classes'
eventsourcing topics (``get_topic(Fan.PurchaseRecorded)``); a stable type name
(``"FanPurchaseRecorded"``) filters as well. The log takes events only from fancrm's domain:
inserts are refused.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from eventsourcing.persistence import (
    ApplicationRecorder,
    Notification,
    NotSupportedError,
    StoredEvent,
)

from adapters.postgres.event_store.notifications import (
    last_seq,
    sealed_events,
    seq_of,
    stream_events,
)
from adapters.postgres.eventsourcing_log.loop import LoopThread
from adapters.postgres.eventsourcing_log.mapper import (
    REFUSED,
    LogStoredEvent,
    event_types,
    notification,
    topic_of,
)
from adapters.postgres.personal_data import PersonalDataCodec


class LogRecorder(ApplicationRecorder):
    def __init__(
        self,
        loop: LoopThread,
        pool: asyncpg.Pool,
        personal: PersonalDataCodec | None,
        tenant: str | None = None,
    ) -> None:
        self._loop = loop
        self._pool = pool
        self._personal = personal
        self.tenant = tenant

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        raise NotSupportedError(REFUSED)

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        # A stream, every version it holds (sealed yet or not), decoded as notifications are.
        recorded = self._loop.run(
            stream_events(self._pool, self._personal, str(originator_id), lte)
        )
        found = [r for r in recorded if gt is None or r.version > gt]
        if self.tenant is not None:
            found = [r for r in found if r.metadata.tenant == self.tenant]
        found.sort(key=lambda r: r.version, reverse=desc)
        return [
            LogStoredEvent(r.stream_id, r.version, topic_of(r.event_type), b"", r)
            for r in found[:limit]
        ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        after = 0 if start is None else start - 1 if inclusive_of_start else start
        return self.fetch(after, limit, stop, topics).result()

    def fetch(
        self,
        after: int,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        until: datetime | None = None,
    ) -> concurrent.futures.Future[list[Notification]]:
        """The notifications after ``after`` (of events recorded at or before ``until``), read
        and decoded on the loop: the caller may process a batch while the next one is read
        (LogSubscription and analytics.replay do)."""
        types = event_types(topics)
        return self._loop.submit(self._notifications(after, limit, stop, types, until))

    def follow(
        self, after: int, limit: int, topics: Sequence[str] = ()
    ) -> concurrent.futures.Future[tuple[list[Notification], int]]:
        """``fetch``, and where the next read may start: past the batch, and when the batch
        is short, past every number sealed before the read began (none of them is ours), so a
        filtered reader of a quiet tenant does not read the same stretch of others' events at
        every poll."""
        types = event_types(topics)
        return self._loop.submit(self._following(after, limit, types))

    async def _following(
        self, after: int, limit: int, types: list[str] | None
    ) -> tuple[list[Notification], int]:
        # Read first: the chain is numbered by one sealer in order, so every number up to
        # this one is visible to the read that follows.
        sealed = await last_seq(self._pool) or 0
        found = await self._notifications(after, limit, None, types)
        if len(found) == limit:
            return found, found[-1].id
        return found, max(after, sealed, found[-1].id if found else 0)

    def id_of(self, position: int) -> int | None:
        """The notification id of the event at ``position``; None if it is not sealed yet."""
        return self._loop.run(seq_of(self._pool, position))

    async def _notifications(
        self,
        after: int,
        limit: int,
        stop: int | None,
        types: list[str] | None,
        until: datetime | None = None,
    ) -> list[Notification]:
        if types == [] or limit < 1:
            return []
        found = await sealed_events(
            self._pool,
            self._personal,
            after=after,
            limit=limit,
            stop=stop,
            event_types=types,
            tenant=self.tenant,
            until=until,
        )
        return [notification(sealed) for sealed in found]

    def max_notification_id(self) -> int | None:
        return self._loop.run(last_seq(self._pool, self.tenant))

    async def close(self) -> None:
        await self._pool.close()

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Any:
        from adapters.postgres.eventsourcing_log.subscription import LogSubscription

        return LogSubscription(self, gt, topics)
