"""What `crm dev` takes from its environment and its folder: CRM_DEV_SIMULATOR changes the
simulator it runs, checked as the simulator checks its own settings (a mistake stops `crm dev`
with the reason); the master key is made once in its data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.dev import _dev_master_key, _overridden
from adapters.onlyfans.simulator import SimulatorConfig

LIVELY = SimulatorConfig(
    seed=None, webhook_url="http://127.0.0.1:8000", webhook_secrets={"1": "whsec_x"}
)


def test_named_settings_change_and_the_rest_stay() -> None:
    config = _overridden(LIVELY, '{"reply_probability": 1, "webhook_delay": 0.1}')
    assert (config.reply_probability, config.webhook_delay) == (1.0, 0.1)
    assert (config.webhook_url, config.webhook_secrets) == (
        "http://127.0.0.1:8000",
        {"1": "whsec_x"},
    )
    assert _overridden(LIVELY, None) is LIVELY


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"reply_probability": 2}', "must be within [0, 1]"),
        ('{"replies": 1}', "unknown simulator settings ['replies']"),
        ('{"webhook_url": "http://elsewhere"}', "unknown simulator settings ['webhook_url']"),
        ("[1]", "Expected `object`"),
        ("{reply", "malformed"),
    ],
)
def test_a_mistake_stops_with_its_reason(raw: str, reason: str) -> None:
    with pytest.raises(SystemExit, match=r"^CRM_DEV_SIMULATOR: ") as stopped:
        _overridden(LIVELY, raw)
    assert reason in str(stopped.value)


def test_the_dev_master_key_is_made_in_a_data_folder_that_does_not_exist_yet(
    tmp_path: Path,
) -> None:
    # With DATABASE_URL set, no embedded Postgres creates the folder before the key is made.
    folder = tmp_path / "not" / "yet"
    key = _dev_master_key(folder)
    assert (folder / "master-key").read_text().strip() == key
    assert _dev_master_key(folder) == key  # made once, then kept
