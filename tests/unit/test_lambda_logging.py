"""The Lambda's logs: structlog lines printed by Powertools' Logger as JSON, with the line's
own fields, the caller as location, and fields that logging reserves renamed, not refused."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from adapters.lambda_logging import configure_lambda_logging


@pytest.fixture
def lambda_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


def test_structlog_lines_come_out_as_powertools_json(
    lambda_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_lambda_logging("INFO", service="test-sender")

    def send() -> None:
        structlog.get_logger("x").info("message sent", message_id="m-1", name="not the logger's")

    send()
    structlog.get_logger("x").debug("not shown at INFO")
    logging.getLogger("asyncpg").warning("a library's line")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["message sent", "a library's line"]
    sent = lines[0]
    assert (sent["level"], sent["service"], sent["message_id"]) == ("INFO", "test-sender", "m-1")
    assert sent["name_"] == "not the logger's"
    assert sent["location"].startswith("send:")
