"""Scaffolding shared by the benchmarks in bench/ (not a benchmark itself).

Scratch databases (on DATABASE_URL's server or an embedded one), ``crm serve`` in a child
process, CPU sampling helpers, percentiles, and the closed-loop HTTP load generator used by
bench/api.py and bench/send.py. The scripts run as ``python bench/<script>.py``, so this
folder is on sys.path and they ``import _common``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec

from adapters.embedded import EmbeddedStack

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

ROOT = Path(__file__).resolve().parents[1]
FANS = "/api/crm/fans"

FIRST_NAMES = ("Ann", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")
LAST_NAMES = ("Smith", "Ng", "Okafor", "Rossi", "Kim", "Silva", "Novak", "Haddad", "Berg", "Ito")


# --- scratch databases ---------------------------------------------------------------------


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def database_server(
    embedded_stack: bool = False,
) -> AsyncIterator[tuple[str, str, EmbeddedStack | None]]:
    """DATABASE_URL's server, or Postgres embedded in a temporary folder (stopped and removed
    after). Yields (admin url, where the server is, the EmbeddedStack or None). With
    ``embedded_stack`` there is a stack even on DATABASE_URL (to start a redis-server)."""
    admin_url = os.environ.get("DATABASE_URL", "")
    if admin_url and not embedded_stack:
        yield admin_url, "DATABASE_URL", None
        return
    with tempfile.TemporaryDirectory(prefix="fancrm-bench-") as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            where = "DATABASE_URL"
            if not admin_url:
                admin_url = await asyncio.to_thread(stack.start_postgres)
                where = "embedded"
            yield admin_url, where, stack
        finally:
            stack.stop()


@asynccontextmanager
async def scratch_databases(
    admin_url: str, count: int = 1, settings: dict[str, str] | None = None
) -> AsyncIterator[list[str]]:
    """``count`` new, migrated databases on ``admin_url``'s server (with ``settings`` as
    ``ALTER DATABASE ... SET``), dropped after. Yields their urls."""
    from adapters.postgres.migrate import migrate

    names: list[str] = []
    try:
        for _ in range(count):
            name = f"fancrm_bench_{uuid.uuid4().hex[:10]}"
            await admin(admin_url, f'CREATE DATABASE "{name}"')
            names.append(name)
            for key, value in (settings or {}).items():
                await admin(admin_url, f'ALTER DATABASE "{name}" SET {key} = {value}')
            await migrate(with_database(admin_url, name))
        yield [with_database(admin_url, name) for name in names]
    finally:
        for name in names:
            await admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def scratch_database(
    settings: dict[str, str] | None = None,
) -> AsyncIterator[tuple[str, str]]:
    """A new, migrated database on DATABASE_URL's server or on an embedded one; dropped after.
    Yields (url, where the server is)."""
    async with (
        database_server() as (admin_url, where, _),
        scratch_databases(admin_url, 1, settings) as urls,
    ):
        yield urls[0], where


# --- CPU -----------------------------------------------------------------------------------

PG_PIDS_SQL = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE backend_type <> 'client backend' OR datname = current_database()"
)


async def pg_pids(*pools: asyncpg.Pool) -> list[int]:
    """The backends of these pools' databases and the server's background processes."""
    pids: set[int] = set()
    for pool in pools:
        pids.update(row["pid"] for row in await pool.fetch(PG_PIDS_SQL))
    return sorted(pids)


def cpu_seconds(procs: Iterable[Any]) -> dict[int, float]:
    """{pid: user + system CPU seconds} of psutil processes; those gone meanwhile are left out."""
    used = {}
    for proc in procs:
        try:
            times = proc.cpu_times()
        except Exception:  # exited meanwhile (an autovacuum worker, say)
            continue
        used[proc.pid] = times.user + times.system
    return used


def cpu_delta(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds used in between by the processes alive at both ends."""
    if before is None or after is None:
        return None
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def host_busy(psutil: Any) -> float:
    """Busy CPU seconds of the whole host (all but idle and iowait)."""
    busy = psutil.cpu_times()
    return float(sum(busy) - busy.idle - getattr(busy, "iowait", 0.0))


class PgCpuMeter:
    """CPU seconds of this process and of the given local Postgres processes."""

    def __init__(self, pids: list[int]) -> None:
        self._procs: list | None = None
        try:
            import psutil

            self._procs = [psutil.Process(pid) for pid in pids]
        except Exception:  # psutil missing, or the server is not on this machine
            self._procs = None

    def sample(self) -> tuple[float, dict[int, float] | None]:
        mine = time.process_time()
        if self._procs is None:
            return mine, None
        return mine, cpu_seconds(self._procs)

    delta = staticmethod(cpu_delta)


class GroupCpuMeter:
    """CPU seconds used by groups of processes: this one (``bench``), the API servers' trees
    (``api``), local Postgres (``pg``), and with ``host`` the whole host's busy time. A sample
    maps each group to {pid: seconds}; only pids alive at both ends are compared."""

    def __init__(self, api_pids: list[int], pg_pids: list[int], host: bool = False) -> None:
        self._api_pids = api_pids
        self._pg_pids = pg_pids
        self._host = host
        try:
            import psutil

            self._psutil: Any = psutil
        except ImportError:
            self._psutil = None

    def sample(self) -> dict[str, dict[int, float] | None]:
        out: dict[str, dict[int, float] | None] = {
            "bench": {os.getpid(): time.process_time()},
            "api": None,
            "pg": None,
        }
        if self._host:
            out["host"] = None
        if self._psutil is None:
            return out
        ps = self._psutil
        if self._host:
            out["host"] = {0: host_busy(ps)}
        api = []
        for pid in self._api_pids:
            with contextlib.suppress(ps.Error):
                root = ps.Process(pid)
                api += [root, *root.children(recursive=True)]
        out["api"] = cpu_seconds(api) if api else None
        procs = []
        for pid in self._pg_pids:
            with contextlib.suppress(ps.Error):
                procs.append(ps.Process(pid))
        out["pg"] = cpu_seconds(procs) if procs else None
        return out

    delta = staticmethod(cpu_delta)


# --- percentiles ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The value at rank ``int(q * n)`` of the sorted values (the largest for q = 1)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- crm serve -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[str]
    log: Any  # a temporary file holding the server's stdout and stderr
    started: float
    base_url: str
    application_name: str = ""

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        self.log.seek(0)
        return "".join(self.log.readlines()[-lines:])


@contextlib.contextmanager
def crm_serve(
    env_extra: dict[str, str],
    port: int,
    workers: int = 1,
    unset: Iterable[str] = (),
    application_name: str = "",
    prelude: str = "",
) -> Iterator[Server]:
    """`crm serve` in a child process (this environment, less ``unset``, plus ``env_extra``,
    LOG_LEVEL=WARNING), stopped (SIGTERM, then SIGKILL) on the way out. ``prelude``: Python
    statements the process runs first (a benchmark's instrumentation)."""
    env = {**os.environ, **env_extra, "LOG_LEVEL": "WARNING", "LOG_FORMAT": "console"}
    for name in unset:
        if name not in env_extra:
            env.pop(name, None)
    command = [
        sys.executable,
        "-c",
        f"{prelude}\nfrom adapters.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log, text=True)
        try:
            yield Server(
                proc, log, time.perf_counter(), f"http://127.0.0.1:{port}", application_name
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_ready(server: Server, client: httpx.AsyncClient | None = None) -> float:
    """Poll /health until the server answers; returns seconds since it was started."""
    async with contextlib.AsyncExitStack() as stack:
        probe = client or await stack.enter_async_context(
            httpx.AsyncClient(base_url=server.base_url)
        )
        while time.perf_counter() - server.started < 60:
            if server.proc.poll() is not None:
                raise SystemExit(
                    f"crm serve exited with {server.proc.returncode}:\n{server.tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if (await probe.get("/health")).status_code == 200:
                    return time.perf_counter() - server.started
            await asyncio.sleep(0.1)
    raise SystemExit(f"crm serve did not answer /health within 60 s:\n{server.tail()}")


# --- HTTP load -----------------------------------------------------------------------------


@dataclass
class HttpResult:
    """Latencies and errors of one scenario driven by ``drive``."""

    name: str
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


class RawResponse:
    """What the load generator keeps of an answer: its status and body."""

    __slots__ = ("body", "status_code")

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class RawClient:
    """One HTTP/1.1 keep-alive connection on bare asyncio streams, as wrk would hold: the
    request is a few bytes joined, the answer a status line, a Content-Length and a body read.

    httpx spends ~1 ms of CPU per request even with a client each (more than the API's own
    handler), and this process shares the cores with the API and Postgres: the leaner the
    load generator, the more of the machine the server gets. Only what the benchmarks need:
    GET and POST, JSON bodies, Content-Length or chunked answers; the connection is reopened
    after an error, a ``Connection: close`` or the server closing it while idle."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        fixed = {"Host": parts.netloc, **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: dict[str, str] | None = None) -> RawResponse:
        return await self.request("GET", path, headers=headers)

    async def post(
        self, path: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> RawResponse:
        body = b"" if json is None else msgspec.json.encode(json)
        return await self.request("POST", path, body, headers, "application/json")

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> RawResponse:
        head = [f"{method} {path} HTTP/1.1\r\n".encode("latin-1"), self._fixed]
        if content_type:
            head.append(f"Content-Type: {content_type}\r\n".encode("latin-1"))
        if body or method == "POST":
            head.append(b"Content-Length: %d\r\n" % len(body))
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(b"\r\n")
        if self._reader is not None and self._reader.at_eof():
            # The server closed the idle connection (uvicorn does after 5 s: a client whose
            # scenario waited for another's slice); httpx reconnects too.
            await self.aclose()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        try:
            self._writer.write(b"".join(head) + body)
            return await self._read(self._reader)
        except BaseException:
            await self.aclose()
            raise

    async def _read(self, reader: asyncio.StreamReader) -> RawResponse:
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = -1
        chunked = close = False
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            body = await _read_chunked(reader)
        elif length >= 0:
            body = await reader.readexactly(length)
        else:  # no length: the body runs to the end of the connection
            body, close = await reader.read(), True
        if close:
            await self.aclose()
        return RawResponse(status, body)

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from our servers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


# Transport failures as ``drive`` counts them, whichever client made the request.
TRANSPORT_ERRORS = (
    httpx.HTTPError,
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
)


@asynccontextmanager
async def raw_clients(base_url: str, key: str, count: int) -> AsyncIterator[list[RawClient]]:
    """``count`` virtual clients on bare asyncio streams, one keep-alive connection each."""
    clients = [RawClient(base_url, {"Authorization": f"Bearer {key}"}) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


@asynccontextmanager
async def load_clients(
    base_url: str, key: str, count: int, shared: bool = False
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` virtual clients: an AsyncClient each (one keep-alive connection), or one
    AsyncClient with a pool of ``count`` connections shared by all (``shared``)."""
    options: dict[str, Any] = {
        "base_url": base_url,
        "headers": {"Authorization": f"Bearer {key}"},
        "timeout": httpx.Timeout(30.0),
    }
    async with contextlib.AsyncExitStack() as stack:
        if shared:
            limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
            one = await stack.enter_async_context(httpx.AsyncClient(limits=limits, **options))
            yield [one] * count
        else:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            yield [
                await stack.enter_async_context(httpx.AsyncClient(limits=limits, **options))
                for _ in range(count)
            ]


async def drive(
    clients: list[Any],
    call: Callable[[Any], Awaitable[Any]],
    seconds: float,
    result: HttpResult | None,
    ok: Callable[[Any], bool] = lambda response: response.is_success,
) -> None:
    """Each client (an httpx.AsyncClient or a RawClient) sends its next request as soon as its
    last one is answered, for ``seconds``; latencies and failures (not ``ok``, or transport
    errors) go to ``result``."""
    clock = time.perf_counter

    async def one_client(client: httpx.AsyncClient, until: float) -> None:
        while (started := clock()) < until:
            try:
                response = await call(client)
                failed = None if ok(response) else f"HTTP {response.status_code}"
            except TRANSPORT_ERRORS as error:
                failed = type(error).__name__
            if result is None:
                continue
            result.latencies.append(clock() - started)
            if failed:
                result.errors += 1
                result.error_kinds[failed] = result.error_kinds.get(failed, 0) + 1

    started = clock()
    await asyncio.gather(*(one_client(client, started + seconds) for client in clients))
    if result is not None:
        result.seconds += clock() - started


def new_fan(email: bool = False) -> dict[str, Any]:
    """A random POST /api/crm/fans body (with an email address if asked)."""
    first, last = random.choice(FIRST_NAMES), random.choice(LAST_NAMES)
    n = random.randrange(1_000_000)
    fan: dict[str, Any] = {
        "name": f"{first} {last}",
        "handle": f"{first.lower()}_{last.lower()}_{n}",
    }
    if email:
        fan["email"] = f"{first.lower()}.{n}@example.com"
    fan["valueCents"] = random.randrange(100_000)
    fan["tags"] = random.sample(["vip", "new", "whale", "churned", "promo"], k=2)
    return fan
