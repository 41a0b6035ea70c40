"""A short property-based fuzz run over every operation of /schema/openapi.json: whatever a
client sends, in the documented shapes (positive) and out of them (negative), no answer is a
5xx (schemathesis's ``not_a_server_error``). The app runs in-process over ASGI with its own
container (schemathesis drives it from a thread of its own) and a real creator key.

Deterministic and short: hypothesis derandomized, a bounded number of examples per operation
and mode, no example database. The figures are printed (``pytest -s``)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode

from adapters.http.app import create_app
from tests.support.openapi import deterministic, negatable
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(240)

EXAMPLES = 25  # per operation and generation mode
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def test_no_operation_of_the_openapi_answers_a_server_error(
    database_url: str, api_key: str
) -> None:
    # A read-your-writes wait that cannot succeed (a position beyond the log) gives up at once:
    # the fuzz run is about answers, not about waiting.
    app = create_app(settings=settings_for(database_url, read_your_writes_timeout=0.05))
    loaded = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    schema = schemathesis.openapi.from_dict(_closed_bodies(loaded.raw_schema))
    schema.app = app
    # ASCII text makes control characters (NUL among them) frequent instead of one in a
    # million code points: those are what broke the app before (issue 13).
    schema.config.generation.update(codec="ascii")
    headers = {"Authorization": f"Bearer {api_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    generated = 0
    failures: list[str] = []
    started = time.monotonic()

    for operation in operations:
        for mode in MODES:
            if mode is GenerationMode.NEGATIVE and not negatable(operation):
                continue

            @deterministic(EXAMPLES)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                nonlocal generated
                generated += 1
                # Authenticated as the creator, whatever the generated Authorization header:
                # the run is about what lies behind the key check.
                case.headers = {**(case.headers or {}), **headers}
                response = case.call()
                if not _lagging(response) and not _unhealthy(response):
                    case.validate_response(response, checks=[not_a_server_error])

            try:
                run()
            except (Exception, FailureGroup) as error:  # every operation's failure is reported
                failures.append(f"{operation.label} ({mode.value}): {error}")

    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {len(operations)} operations, {generated} examples, "
        f"{len(failures)} with a 5xx, {elapsed:.1f} s"
    )
    assert len(operations) >= 30
    assert not failures, "\n\n".join(failures)


def _closed_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """Request bodies refuse unknown fields (adapters/http/schemas.Body), which litestar's
    document does not say: without this, nearly every generated body holds an unknown field
    and stops at the 400, never reaching the code behind it."""
    for name, component in document.get("components", {}).get("schemas", {}).items():
        if name.endswith("Body") and component.get("type") == "object":
            component["additionalProperties"] = False
    return document


def _lagging(response: Any) -> bool:
    """The two 5xx of the contract: a read asked to wait for a position its view has not
    reached is a 503 to retry, not a failure (a position no event holds is a 400 at once);
    and the health check answers 503 when sending cannot work, as here where the test
    stack has no Redis for its rate limiter (adapters/http/monitoring.py)."""
    if response.status_code != 503:
        return False
    body = response.json()
    return isinstance(body, dict) and str(body.get("type", "")).endswith("/projection-lagging")


def _unhealthy(response: Any) -> bool:
    """The monitoring route's documented 503: sending is down (here: the rate limiter is
    enabled and no Redis is configured), answered as the health report, not a failure."""
    if response.status_code != 503:
        return False
    body = response.json()
    return isinstance(body, dict) and body.get("status") == "unhealthy" and "sending" in body
