"""Helpers for end-to-end tests of bulk campaigns: many fans fast, the API on a real port (so
the simulator's signed webhooks reach it), the workers as tasks of the test's loop, and the
campaign worker as a process of its own (to be killed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from adapters import bootstrap
from adapters.http.app import create_app
from application.context import CommandContext
from application.ports import StreamWrite
from domain.fan import Fan
from projections.runner import ProjectionRunner
from tests.support.settings import TEST_MASTER_KEY
from worker.campaigns import run_campaign_worker
from worker.projections import run_projectors
from worker.relay import run_relay
from worker.sender import run_sender_worker

ROOT = Path(__file__).resolve().parents[2]
BULK = "/api/messages/bulk"
CAMPAIGNS = "/api/crm/campaigns"


async def bulk_fans(
    container: bootstrap.Container,
    tenant: str,
    count: int,
    *,
    tags: tuple[str, ...] = (),
    batch: int = 1000,
    writers: int = 2,
) -> list[int]:
    """``count`` fans of ``tenant`` without a conversation (as after an import), ``batch``
    FanRegistered events per append_all, by ``writers`` concurrent tasks; their ids, sorted."""
    ctx = CommandContext(tenant=tenant, actor="test", correlation_id=uuid.uuid4().hex)
    ids = await container.ids.next_ids("fan", count)
    starts = iter(range(0, count, batch))

    async def writer() -> None:
        for start in starts:
            writes = []
            for fan_id in ids[start : start + batch]:
                fan = Fan.register(
                    fan_id=fan_id,
                    tenant=tenant,
                    platform_id=f"of-{fan_id}",
                    name=f"Fan {fan_id}",
                    handle=f"fan_{fan_id}",
                    tags=list(tags),
                )
                pending = fan.collect_events()
                writes.append(
                    StreamWrite(fan.id, "fan", pending, pending[0].originator_version - 1)
                )
            await container.events.append_all(writes, metadata=ctx.metadata())

    await asyncio.gather(*(writer() for _ in range(writers)))
    return sorted(ids)


async def catch_up_all(container: bootstrap.Container) -> None:
    """Every projector (core and analytics) up to what is committed now."""
    for projection in bootstrap.all_projections():
        await ProjectionRunner(container.projection_store, projection, batch_size=2000).catch_up()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server(uvicorn.Server):
    """No signal handlers of its own: the test process keeps pytest's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def served_api(
    container: bootstrap.Container, port: int, app: Any = None
) -> AsyncIterator[str]:
    """The app (``app``, or one built around ``container``) on 127.0.0.1:``port`` (uvicorn on
    this loop, so it shares the container's pool); its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = _Server(
        uvicorn.Config(
            app or create_app(container=container),
            log_config=None,
            access_log=False,
            # On: the app's shutdown stops what it started (the live stream's tail).
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if serving.done():
                    serving.result()
                    raise RuntimeError("the API did not start")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await serving
        sock.close()


@contextlib.asynccontextmanager
async def workers(
    container: bootstrap.Container,
    *,
    projectors: bool = True,
    relay: bool = True,
    sender: bool = True,
    campaigns: bool = True,
) -> AsyncIterator[None]:
    """The long-running workers of `crm worker ...` as tasks of this loop; stopped (and
    awaited, so a failure shows) on leaving."""
    stop = asyncio.Event()
    chosen = [
        (projectors, run_projectors),
        (relay, run_relay),
        (sender, run_sender_worker),
        (campaigns, run_campaign_worker),
    ]
    tasks = [asyncio.create_task(run(container, stop)) for wanted, run in chosen if wanted]
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await asyncio.gather(*tasks)


async def launch(http: httpx.AsyncClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST /api/messages/bulk; the 202's body."""
    response = await http.post(BULK, json=body, headers=auth)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def campaign_view(
    http: httpx.AsyncClient, auth: dict[str, str], campaign_id: int, min_position: int = 1
) -> dict[str, Any]:
    """GET /api/crm/campaigns/{id}, once the views have reached ``min_position`` (a 202's
    ``position``: the campaign's launch)."""
    response = await http.get(
        f"{CAMPAIGNS}/{campaign_id}", params={"minPosition": min_position}, headers=auth
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["campaign"])


async def change(
    http: httpx.AsyncClient, auth: dict[str, str], campaign_id: int, action: str
) -> dict[str, Any]:
    """POST /api/crm/campaigns/{id}/pause|resume|cancel."""
    response = await http.post(f"{CAMPAIGNS}/{campaign_id}/{action}", headers=auth)
    assert response.status_code == 200, response.text
    return dict(response.json())


class CampaignWorkerProcess:
    """`crm worker campaigns` in a process of its own, configured from the environment only;
    its log goes to ``log_path`` (appended, so restarts keep one log)."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self.env = {**os.environ, "CRM_MASTER_KEY": TEST_MASTER_KEY, **env}
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from adapters.cli import main; main()",
                "worker",
                "campaigns",
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError(
                f"the campaign worker exited on its own ({self.process.returncode}):\n"
                + self.tail()
            )

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.kills += 1

    async def stop(self) -> int | None:
        """SIGTERM (the worker's graceful stop), then SIGKILL if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
