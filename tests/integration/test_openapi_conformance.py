"""Every operation of /schema/openapi.json answers as its document says (issue 14, items 12
and 13): schemathesis sends each one data its schema allows (positive) and data it does not
(negative), as a creator, and checks each answer's status, content type, headers and body
against what the operation documents, errors included (RFC 9457 problem+json).

Then what the schema allows, the API accepts: a positive example refused as malformed (a
400 ``validation-error``) means the document allows what the API refuses, except where the
document cannot say the rule (``KNOWN_400_DETAILS``). Other refusals of valid-looking data
are facts a schema cannot hold (no such fan here: 404; this fan is not yours, this cursor
was not ours, a name or a handle: 422; the view is behind the position asked: 503; a
creator key on an auditor's route: 403; an unsigned webhook: 401): counted by problem type
and printed; the domain's refusals (422) must stay a minority.

Deterministic and short: hypothesis derandomized, a few examples per operation and mode, no
example database. The figures are printed (``pytest -s``)."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.http.app import create_app
from tests.support.openapi import app_schema, deterministic, negatable
from tests.support.settings import settings_for

pytestmark = pytest.mark.timeout(240)

EXAMPLES = 8  # per operation and generation mode
# Today 24 of 281 (8.5 %); 57 of 288 before the cross-field rules and the ASCII-only
# whitespace classes came into the document.
MAX_DOMAIN_REFUSALS_PERCENT = 15
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Refusals of data the schema allows that JSON Schema cannot rule out:
KNOWN_400_DETAILS = (
    # JSON Schema counts 12.0 as an integer; the API takes integers written as integers (a
    # float is a 400 wrong type: README, status codes).
    "got `float`",
    # A position must be one the log has given out: beyond its head is a 400, and the head
    # moves with every write.
    "no event was recorded at this position",
)


def test_every_operation_answers_as_its_openapi_document_says(
    database_url: str, api_key: str
) -> None:
    app = create_app(settings=settings_for(database_url, read_your_writes_timeout=0.05))
    schema = app_schema(app)
    operations = [result.ok() for result in schema.get_all_operations()]
    run = Run(headers={"Authorization": f"Bearer {api_key}"})
    started = time.monotonic()

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not negatable(operation):
                continue
            try:
                run.examples(operation, mode)()
            except (Exception, FailureGroup) as error:  # every operation's failure is reported
                run.failures.append(f"{operation.label} ({mode.value}): {error}")

    elapsed = time.monotonic() - started
    answers = dict(sorted(run.positive.items()))
    refused = sum(n for status, n in answers.items() if 400 <= status < 500)
    print(
        f"\nconformance: {len(operations)} operations, {run.generated} examples,"
        f" {len(run.failures)} failures, {elapsed:.1f} s; positive examples answered"
        f" {answers} ({refused}/{sum(answers.values())} 4xx); refused as"
        f" {dict(run.refusals.most_common())}"
    )
    assert len(operations) >= 36
    assert not run.failures, "\n\n".join(run.failures)
    assert not run.refused_as_malformed, "\n".join(run.refused_as_malformed)
    # What JSON Schema cannot say (fans that are not this account's, cursors, the state a
    # fan's version or a campaign is in) stays a minority of valid-looking examples.
    assert run.refusals["invalid-value"] * 100 <= MAX_DOMAIN_REFUSALS_PERCENT * sum(
        answers.values()
    )


@dataclasses.dataclass
class Run:
    """The figures of a run, and the hypothesis test of one operation in one mode."""

    headers: dict[str, str]
    generated: int = 0
    positive: Counter[int] = dataclasses.field(default_factory=Counter)
    refusals: Counter[str] = dataclasses.field(default_factory=Counter)
    refused_as_malformed: list[str] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)

    def examples(self, operation: Any, mode: GenerationMode) -> Callable[[], None]:
        @deterministic(EXAMPLES)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            self.generated += 1
            # Authenticated as the creator, whatever the generated Authorization header.
            case.headers = {**(case.headers or {}), **self.headers}
            response = case.call()
            if mode is GenerationMode.POSITIVE:
                self.positive[response.status_code] += 1
                self.refusals[_problem_type(response)] += response.status_code >= 400
                if _malformed(response):
                    self.refused_as_malformed.append(
                        f"{operation.label}: {response.json().get('detail')}"
                        f" <- {case.body!r} {case.query!r}"
                    )
            case.validate_response(response, checks=CHECKS)

        return run


def _problem_type(response: Any) -> str:
    # schemathesis keeps each header's values as a list
    content_type = "".join(response.headers.get("content-type") or [])
    if not content_type.startswith("application/problem+json"):
        return ""
    return str(response.json().get("type", "")).rsplit("/", 1)[-1]


def _malformed(response: Any) -> bool:
    """A 400 validation error, but for those JSON Schema cannot rule out."""
    if response.status_code != 400:
        return False
    body = response.json()
    return (
        isinstance(body, dict)
        and str(body.get("type", "")).endswith("/validation-error")
        and not any(known in str(body.get("detail")) for known in KNOWN_400_DETAILS)
    )
