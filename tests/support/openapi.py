"""The app's OpenAPI document as the schemathesis runs drive it."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from litestar import Litestar


def app_schema(app: Litestar) -> Any:
    """The app's own document (request bodies closed to unknown fields, as it says), its
    text drawn from ASCII: control characters (NUL among them) come often instead of one in a
    million code points, and those are what broke the app before (issue 13)."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    schema.config.generation.update(codec="ascii")
    return schema


def negatable(operation: Any) -> bool:
    """Whether an operation has anything to send wrong (a parameter, a body, a key): /health
    has none, and schemathesis cannot make a negative example of nothing."""
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody") or raw.get("security"))


def deterministic(max_examples: int) -> settings:
    """The examples of a run, the same on every run: derandomized, no example database, no
    deadline (the machine's load must not decide), the explicit examples then generated ones."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
