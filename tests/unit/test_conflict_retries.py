"""Read-decide-append retries: a command that loses a race to another writer tries again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from application import streams
from application.errors import ConcurrencyError
from application.streams import retry_on_conflict


def losing(times: int) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """An attempt that conflicts ``times`` times, then saves; and the list of its calls."""
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(len(calls))
        if len(calls) <= times:
            raise ConcurrencyError("another writer got in first")
        return "saved"

    return calls, attempt


async def test_a_command_that_loses_every_race_but_the_last_is_saved() -> None:
    calls, attempt = losing(streams.CONFLICT_RETRIES - 1)
    assert await retry_on_conflict(attempt, retry=True) == "saved"
    assert len(calls) == streams.CONFLICT_RETRIES


async def test_a_command_that_loses_every_race_reports_the_conflict() -> None:
    calls, attempt = losing(streams.CONFLICT_RETRIES)
    with pytest.raises(ConcurrencyError):
        await retry_on_conflict(attempt, retry=True)
    assert len(calls) == streams.CONFLICT_RETRIES


async def test_a_command_pinned_to_a_version_is_never_retried() -> None:
    calls, attempt = losing(1)
    with pytest.raises(ConcurrencyError):
        await retry_on_conflict(attempt, retry=False)
    assert calls == [0]
