"""The wait for a database connection inside `crm serve`, for bench/send.py.

Run by the API process before it starts (``_common.crm_serve(prelude=PRELUDE)``), never by the
service itself: wraps the pool's own ``acquire()`` so that each wait, from asking for a
connection to holding one, is kept with the wall-clock time it ended; on SIGUSR1 the process
writes them all to ``$BENCH_CONNECTION_WAIT_FILE`` as JSON ``[[time, seconds], ...]``. The
benchmark keeps those that ended inside its timed slices. Uvicorn's spawned workers do not run
the prelude: with ``--workers`` above 1 nothing is measured.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import msgspec

FILE_VARIABLE = "BENCH_CONNECTION_WAIT_FILE"
PRELUDE = (
    f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
    "import _connection_wait; _connection_wait.install()"
)

_waits: list[tuple[float, float]] = []


def install() -> None:
    """Time the API pool's acquire (whatever class implements it) in this process."""
    from adapters.postgres.fair_pool import FairPool

    acquire = FairPool.acquire

    def timed_acquire(self: FairPool, *, timeout: float | None = None) -> _Timed:
        return _Timed(acquire(self, timeout=timeout))

    FairPool.acquire = timed_acquire  # type: ignore[assignment,method-assign]
    signal.signal(signal.SIGUSR1, _write)


class _Timed:
    """The pool's acquire context, timed as ``async with`` or as ``await``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __await__(self) -> Generator[Any, None, Any]:
        return self._awaited().__await__()

    async def _awaited(self) -> Any:
        asked = time.perf_counter()
        connection = await self._inner
        _waits.append((time.time(), time.perf_counter() - asked))
        return connection

    async def __aenter__(self) -> Any:
        asked = time.perf_counter()
        connection = await self._inner.__aenter__()
        _waits.append((time.time(), time.perf_counter() - asked))
        return connection

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)


def _write(signum: int, frame: Any) -> None:
    path = Path(os.environ[FILE_VARIABLE])
    partial = path.with_suffix(".partial")
    partial.write_bytes(msgspec.json.encode(list(_waits)))
    partial.replace(path)  # the reader sees the whole file or none
    print(f"wrote {len(_waits)} connection waits to {path}", file=sys.stderr)


def read_waits(path: Path) -> list[tuple[float, float]]:
    return [(ended, seconds) for ended, seconds in msgspec.json.decode(path.read_bytes())]
