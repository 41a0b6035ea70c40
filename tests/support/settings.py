"""Settings for tests: every container of a test run shares one master key, as every process
of one deployment does (a database remembers which master key wraps its data keys)."""

from __future__ import annotations

import os

from adapters.config import Settings
from adapters.crypto import generate_master_key

TEST_MASTER_KEY = os.environ.setdefault("CRM_MASTER_KEY", generate_master_key())


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"master_key": TEST_MASTER_KEY, **overrides}
    return Settings.from_env({}, database_url=database_url, **values)
