"""deploy/Dockerfile: hadolint's checks, the health check on the API's liveness route, and
the image's install steps. This machine has the Docker client but no daemon (and no registry
to pull python:3.12-slim from), so the install steps are run as the Dockerfile runs them, in
a fresh folder holding only what the build context lets in, and the `crm` they install is
run; where a Docker daemon answers, the image itself is built and run too."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.cli import _WORKERS
from adapters.http.app import health

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions(name: str) -> list[str]:
    """The Dockerfile's instructions of one kind, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def copied_from_context() -> list[str]:
    """What the build stage copies from the build context (not from another stage)."""
    paths = []
    for argument in instructions("COPY"):
        if argument.startswith("--from"):
            continue
        *sources, _ = argument.split()
        paths += sources
    return paths


def let_in(path: str) -> bool:
    """Whether .dockerignore lets a top-level path into the build context (its last matching
    pattern decides, as Docker reads it)."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!").rstrip("/")):
            allowed = negated
    return allowed


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_the_image_serves_the_api_by_default_as_a_user_checked_on_its_health_route() -> None:
    [user] = instructions("USER")
    assert not user.startswith(("0", "root"))
    [command] = instructions("CMD")
    assert command.startswith('["crm", "serve"')
    [check] = instructions("HEALTHCHECK")
    [route] = health.paths
    assert f"http://127.0.0.1:8000{route}'" in check
    assert "--port" in command
    assert "8000" in command


def test_the_build_context_lets_in_everything_the_image_copies_and_nothing_local() -> None:
    for path in copied_from_context():
        assert let_in(path), path
    for local in (".venv", ".crm-data", ".git", "tests", "bench", "deploy"):
        assert not let_in(local), local


@pytest.mark.timeout(120)
def test_the_images_install_steps_give_a_crm_with_every_command_and_the_migrations(
    tmp_path: Path,
) -> None:
    for path in copied_from_context():
        source = ROOT / path
        if source.is_dir():
            shutil.copytree(source, tmp_path / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / path)
    uv = shutil.which("uv")
    assert uv is not None
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / ".venv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": "",
    }
    subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--python", sys.executable],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=100,
    )
    bin_dir = tmp_path / ".venv" / "bin"
    workers = subprocess.run(
        [str(bin_dir / "crm"), "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert all(kind in workers for kind in _WORKERS)
    # The migrations runner reads migrations/ beside the installed code, not the checkout's.
    found = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "from adapters.postgres.migrate import MIGRATIONS_DIR as d;"
            "print(d, len(list(d.glob('*.sql'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd="/",
    ).stdout.split()
    assert Path(found[0]) == tmp_path / "migrations"
    assert int(found[1]) == len(list((ROOT / "migrations").glob("*.sql")))
    assert not (bin_dir / "pytest").exists()  # --no-dev: no test tools in the image


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    info = subprocess.run([docker, "info"], capture_output=True, timeout=20, check=False)
    return info.returncode == 0


@pytest.mark.timeout(600)
def test_the_image_builds_and_its_crm_runs() -> None:
    if not docker_answers():
        pytest.skip("no Docker daemon answers on this machine (the client alone is installed)")
    docker = shutil.which("docker")
    assert docker is not None
    tag = "fancrm-test:deploy"
    subprocess.run(
        [docker, "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True, timeout=540
    )
    result = subprocess.run(
        [docker, "run", "--rm", "--no-healthcheck", tag, "crm", "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert all(kind in result.stdout for kind in _WORKERS)
