"""Writing a simulated history into the event store through the application's own handlers.

Each fan's life (timeline.py) becomes the commands a real account's would have run, each
dated at its simulated moment (dated_store.py):

====================  ===========================================================  ============
action                handler (the path it takes in production)                   events
====================  ===========================================================  ============
the fan joins         ``application.fans.create_fan`` (POST /api/fans)             FanCreated
creator message       ``application.messages.queue_message`` (POST /api/…          MessageQueued,
                      /messages), then ``record_sent`` (the sender's outcome)      MessageSent
read, PPV bought,     ``application.webhooks.handle_webhook`` (the platform's      MessageRead,
the fan writes        webhooks: message.read, message.purchased, message.received) …Purchased,
                                                                                   Received
subscription,         ``application.transaction_import.import_transactions``       FanTransaction-
renewal, tip          (POST /api/onlyfans/import/transactions), batches of 1,000   Imported
====================  ===========================================================  ============

The log is written a simulated day at a time, the fans active that day concurrently (each
fan's actions in order), so it is in time order from one day to the next. Transactions are
imported last, once every fan exists, as an agency imports its earnings export: each is dated
when it happened (``occurred_at``, which revenue, cohorts and models use); the event's own
timestamp is when the import ran, as for any import.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from adapters.bootstrap import Container
from adapters.simulated_history.dated_store import DatedEventStore, at
from adapters.simulated_history.timeline import Action, FanLife
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.imports import StartImport
from application.messages import QueueMessage, queue_message, record_sent
from application.transaction_import import (
    DEFAULT_BATCH_SIZE,
    TransactionRow,
    import_transactions,
)
from application.webhooks import WebhookEvent, WebhookType, handle_webhook
from projections.fans import FansProjection
from projections.runner import ProjectionRunner

CREATOR_TEXTS = ("hey you, how is your day going?", "missed you babe", "thanks for the message xx")
OFFER_TEXTS = ("something special just for you", "new set, unlocked only for you")
FAN_TEXTS = ("thanks babe", "omg yes", "how much for more?", "love it", "can you send another?")


def moment(at_seconds: float) -> datetime:
    return datetime.fromtimestamp(at_seconds, UTC)


class _Fan:
    """One fan's commands, run in order; ``messages`` maps the creator's message numbers to
    the ids the application gave them."""

    def __init__(self, writer: HistoryWriter, life: FanLife) -> None:
        self.writer, self.life = writer, life
        self.fan_id: int | None = None
        self.messages: dict[int, str] = {}
        self.written = 0

    async def run(self, actions: list[Action]) -> None:
        for action in actions:
            with at(moment(action.at)):
                await self.do(action)

    async def do(self, action: Action) -> None:
        w, index = self.writer, self.life.index
        if action.kind == "join":
            create = CreateFan(
                platform_id=platform_id(index),
                name=f"Simulated fan {index}",
                subscribed_at=moment(action.at).date(),
            )
            made = await create_fan(create, w.creator, store=w.store, ids=w.ids)
            self.fan_id = made.fan.fan_id
            return
        assert self.fan_id is not None
        if action.kind == "creator":
            texts = OFFER_TEXTS if action.price_cents else CREATOR_TEXTS
            cmd = QueueMessage(
                recipient_id=self.fan_id,
                content=texts[action.key % len(texts)],
                price_cents=action.price_cents,
            )
            accepted = await queue_message(cmd, w.creator, store=w.store, ids=w.ids)
            self.messages[action.key] = accepted.message_id
            with at(moment(action.at + 2.0)):
                sent = f"sim_{accepted.message_id}"
                await record_sent(accepted.message_id, sent, w.sender, store=w.store)
            return
        self.written += 1
        if action.kind == "fan":
            data = {
                "fanId": self.fan_id,
                "platformMessageId": f"sim-{index}-{self.written}",
                "text": FAN_TEXTS[self.written % len(FAN_TEXTS)],
            }
            await w.webhook("message.received", data)
        elif action.kind == "read":
            await w.webhook("message.read", {"messageId": self.messages[action.key]})
        else:
            data = {"messageId": self.messages[action.key], "amountCents": action.price_cents}
            await w.webhook("message.purchased", data)


def platform_id(index: int) -> str:
    return f"sim-{index}"


class HistoryWriter:
    def __init__(self, container: Container, account_id: str, concurrency: int) -> None:
        self.store = DatedEventStore(container.events)
        self.container = container
        self.ids = container.ids
        self.account_id = account_id
        self.concurrency = concurrency
        run = uuid.uuid4().hex[:12]
        self.creator = CommandContext(
            tenant=account_id, actor="cli:simulated-history", correlation_id=f"sim:{run}"
        )
        self.sender = CommandContext(
            tenant=account_id, actor="sender", correlation_id=self.creator.correlation_id
        )
        self.hooks = CommandContext(
            tenant=account_id, actor="webhook", correlation_id=self.creator.correlation_id
        )
        self.imports = TransactionImports(container, self.creator)

    @property
    def events_written(self) -> int:
        return self.store.appended + self.imports.written

    async def webhook(self, kind: WebhookType, data: dict[str, object]) -> None:
        event = WebhookEvent(
            id=f"sim_{uuid.uuid4().hex}", type=kind, account=self.account_id, data=data
        )
        await handle_webhook(event, self.hooks, store=self.store, ids=self.ids)

    async def write(self, lives: list[FanLife], start: float) -> dict[int, _Fan]:
        fans = {life.index: _Fan(self, life) for life in lives}
        gate = asyncio.Semaphore(self.concurrency)

        async def run(index: int, actions: list[Action]) -> None:
            async with gate:
                await fans[index].run(actions)

        async with asyncio.TaskGroup() as group:
            for life in lives:
                group.create_task(run(life.index, life.actions[:1]))  # the joins
        await self.imports.run(lives, self.store.last_position)
        for day in by_day(lives, start).values():
            async with asyncio.TaskGroup() as group:
                for index, actions in day.items():
                    group.create_task(run(index, actions))
        return fans


def by_day(lives: list[FanLife], start: float) -> dict[int, dict[int, list[Action]]]:
    """Each day's actions after the joins, by fan, in order."""
    days: dict[int, dict[int, list[Action]]] = defaultdict(lambda: defaultdict(list))
    for life in lives:
        for action in life.actions[1:]:
            days[int((action.at - start) // 86_400)][life.index].append(action)
    return dict(sorted(days.items()))


class TransactionImports:
    """Subscriptions, renewals and tips, imported as an earnings export is, once every fan
    exists (both paths share it). The import finds fans made through the API as it does in
    production, from the fans read model: the fans projection first catches up with the log,
    as its worker would have."""

    def __init__(self, container: Container, ctx: CommandContext) -> None:
        self.container, self.ctx = container, ctx
        self.written = 0

    async def run(self, lives: list[FanLife], position: int) -> None:
        """``position``: the log's position of the last fan made."""
        await catch_up(self.container, FansProjection(), position)
        rows = sorted(
            (t.at, life.index, t.kind, t.amount_cents) for life in lives for t in life.transactions
        )
        source = _Rows(
            [
                TransactionRow(
                    row=n + 2,  # row 1 is a file's header
                    occurred_at=moment(when),
                    amount_cents=amount,
                    kind=kind,
                    platform="onlyfans",
                    platform_id=platform_id(index),
                )
                for n, (when, index, kind, amount) in enumerate(rows)
            ]
        )
        start = StartImport(
            job_id=str(uuid.uuid4()), file_name="simulated-history.csv", source="cli"
        )
        job, _ = await import_transactions(
            source,
            start,
            self.ctx,
            events=self.container.events,
            imports=self.container.imports,
        )
        if job.error_count:
            raise RuntimeError(f"the transactions' import met errors: {job.errors[:3]}")
        # The job's events: started, one per batch, completed.
        self.written = job.inserted + 2 + -(-job.total_rows // DEFAULT_BATCH_SIZE)


async def catch_up(
    container: Container, projection: FansProjection, position: int, timeout: float = 300
) -> None:
    """``projection`` past ``position`` of the log. The log is read only below the oldest
    transaction open anywhere on the server, so this may take a few passes."""
    runner = ProjectionRunner(container.projection_store, projection)
    async with asyncio.timeout(timeout):
        while (await container.projection_store.checkpoint(runner.name)).position < position:
            if not await runner.catch_up():
                await asyncio.sleep(0.05)


class _Rows:
    """The transactions as an already-parsed file."""

    def __init__(self, rows: list[TransactionRow]) -> None:
        self._rows = rows
        self.size = len(rows)
        digest = hashlib.sha256()
        for row in rows:
            line = f"{row.occurred_at.isoformat()}|{row.platform_id}|{row.kind}|{row.amount_cents}"
            digest.update(line.encode() + b"\n")
        self._checksum = digest.hexdigest()

    @property
    def checksum(self) -> str:
        return self._checksum

    async def rows(self) -> AsyncIterator[TransactionRow]:
        for row in self._rows:
            yield row

    async def read_to_end(self) -> None:
        return None
