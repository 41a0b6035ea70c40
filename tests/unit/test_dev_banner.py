"""The `crm dev` banner: what it prints must work when pasted, and name what really runs."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from adapters.dev_banner import DevStack, banner
from tests.support.settings import settings_for

EMBEDDED_URL = "postgresql://postgres:@/postgres?host=/x/.crm-data/pg"


def stack(data_dir: Path, **overrides: object) -> DevStack:
    values: dict[str, object] = {
        "settings": settings_for(
            EMBEDDED_URL,
            redis_url="unix:///tmp/redis.socket",
            onlyfans_api_url="http://127.0.0.1:8100",
        ),
        "base_url": "http://127.0.0.1:8000",
        "key": "fk_dev",
        "user": "1",
        "data_dir": data_dir,
        "simulated": True,
        "database_from_env": False,
    }
    return DevStack(**(values | overrides))  # type: ignore[arg-type]


def other_commands(text: str) -> list[list[str]]:
    tail = text.split("Other commands against this stack", 1)[1].splitlines()[1:]
    return [shlex.split(line) for line in tail if line.strip()]


def test_the_commands_for_the_default_data_folder_are_the_plain_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    commands = other_commands(banner(stack(Path(".crm-data"))))
    assert commands == [
        ["uv", "run", "crm", "apikey", "create", "--user", "2", "--role", "creator"],
        ["uv", "run", "crm", "projections", "status"],
    ]


def test_the_commands_carry_the_data_folder_crm_dev_was_given(tmp_path: Path) -> None:
    data_dir = tmp_path / "my data"
    commands = other_commands(banner(stack(data_dir)))
    assert len(commands) == 2
    for words in commands:
        assert words[:3] == ["uv", "run", "crm"]
        assert words[-2:] == ["--data-dir", str(data_dir)]


def test_the_commands_carry_the_database_url_crm_dev_was_given(tmp_path: Path) -> None:
    url = "postgresql://app:s3cret@db.internal/crm"
    text = banner(
        stack(tmp_path, settings=settings_for(url, redis_url=None), database_from_env=True)
    )
    for words in other_commands(text):
        assert words[0] == f"DATABASE_URL={url}"


def test_the_platform_line_names_the_configured_platform_not_the_simulator(
    tmp_path: Path,
) -> None:
    real = "https://api.onlyfans-provider.example/v1"
    text = banner(
        stack(
            tmp_path,
            settings=settings_for(EMBEDDED_URL, onlyfans_api_url=real),
            simulated=False,
        )
    )
    line = next(line for line in text.splitlines() if line.strip().startswith("OnlyFans"))
    assert real in line
    assert "ONLYFANS_API_URL" in line
    assert "the simulator" not in line
    simulated = banner(stack(tmp_path))
    line = next(line for line in simulated.splitlines() if line.strip().startswith("OnlyFans"))
    assert "http://127.0.0.1:8100" in line
    assert "the simulator" in line
