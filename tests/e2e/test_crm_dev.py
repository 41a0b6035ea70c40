"""`crm dev` as a person runs it: start, use the printed key, Ctrl-C, start again."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLI = [sys.executable, "-c", "from adapters.cli import main; main()"]


class DevProcess:
    def __init__(self, data_dir: Path, port: int, **extra_env: str) -> None:
        # As on a fresh machine: no database, no Redis, no master key configured.
        unset = ("DATABASE_URL", "REDIS_URL", "CRM_MASTER_KEY", "ONLYFANS_API_URL")
        env = {k: v for k, v in os.environ.items() if k not in unset} | extra_env
        self.env = env
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [
                *CLI,
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    def wait_for_key(self, timeout: float = 90) -> str:
        """Read the start-up banner (it ends with the `crm projections status` hint)."""
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.output.append(line)
            if "crm projections status" in line:
                match = re.search(r"Authorization: Bearer (\S+)", "".join(self.output))
                assert match, "".join(self.output)
                return match.group(1)
        raise AssertionError("crm dev printed no banner:\n" + "".join(self.output))

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            out, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self.output.append(out)
        return self.process.returncode


def postgres_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pg" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def test_crm_dev_serves_the_api_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = DevProcess(tmp_path, port)
    try:
        key = first.wait_for_key()
        banner = "".join(first.output)
        for expected in ("/schema/swagger", "PostgreSQL", "Redis", "curl"):
            assert expected in banner
        auth = {"Authorization": f"Bearer {key}"}
        created = httpx.post(f"{base}/api/crm/fans", json={"name": "Dev Fan"}, headers=auth)
        assert created.status_code == 201, created.text
        body = created.json()
        got = httpx.get(
            f"{base}/api/crm/fans/{body['fan']['id']}",
            params={"minPosition": body["position"]},
            headers=auth,
        )
        assert got.status_code == 200, got.text
        pid = postgres_pid(tmp_path)
    finally:
        code = first.interrupt()
    assert code == 0, "".join(first.output)
    assert pid is not None
    assert not _alive(pid), "embedded Postgres still running after Ctrl-C"

    second = DevProcess(tmp_path, port)
    try:
        assert second.wait_for_key() == key
        listed = httpx.get(f"{base}/api/crm/fans", headers={"Authorization": f"Bearer {key}"})
        assert [fan["name"] for fan in listed.json()["fans"]] == ["Dev Fan"]
    finally:
        assert second.interrupt() == 0


def test_the_banner_commands_reach_a_stack_in_another_folder_and_name_its_platform(
    tmp_path: Path,
) -> None:
    """Started with --data-dir and ONLYFANS_API_URL: the commands it prints work as pasted
    (`uv run crm` being this interpreter's CLI here), and the platform line is that URL."""
    data_dir = tmp_path / "elsewhere" / "stack"
    platform = f"http://127.0.0.1:{free_port()}/provider"
    dev = DevProcess(data_dir, free_port(), ONLYFANS_API_URL=platform)
    try:
        dev.wait_for_key()
        banner = "".join(dev.output)
        platform_line = next(line for line in banner.splitlines() if "OnlyFans " in line)
        assert platform in platform_line, banner
        assert "the simulator" not in platform_line, banner
        tail = banner.split("Other commands against this stack", 1)[1].splitlines()[1:]
        commands = [shlex.split(line) for line in tail if line.strip()]
        assert len(commands) == 2, banner
        outputs = []
        for words in commands:
            assert words[:3] == ["uv", "run", "crm"], words
            assert words[-2:] == ["--data-dir", str(data_dir)], words
            # From elsewhere: the folder in the command, not the working directory, finds it.
            ran = subprocess.run(
                [*CLI, *words[3:]],
                capture_output=True,
                text=True,
                env=dev.env,
                cwd=tmp_path,
                timeout=60,
            )
            assert ran.returncode == 0, (words, ran.stdout, ran.stderr)
            outputs.append(ran.stdout)
        assert "role creator" in outputs[0]
        assert "analytics_cohorts" in outputs[1]
    finally:
        assert dev.interrupt() == 0, "".join(dev.output)


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.2)
    return True
