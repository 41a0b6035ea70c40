"""An ASGI app served by uvicorn on a thread of its own, for the simulator and for tests.

Its own thread and event loop keep the served app independent of the caller's loop: a test
that blocks its loop, or a client that times out, does not stall the server, as with a real
remote provider. It binds its socket before starting, so port 0 gives a free port at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import uvicorn

START_TIMEOUT = 10.0


class BackgroundServer:
    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, graceful_shutdown: int = 1
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        # In-flight requests (a simulated hang) get this long to finish on stop, then are cut.
        self._graceful_shutdown = graceful_shutdown
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("the server was never started")
        return self._bound_port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=self._graceful_shutdown,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start (see its logs)")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self._graceful_shutdown + 10)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        # ``url`` still names the port after a stop: a test may want to hit a dead port.
        self._server, self._thread, self._socket = None, None, None
