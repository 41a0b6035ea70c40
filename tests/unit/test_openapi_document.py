"""/schema/openapi.json says what the API answers (issue 14, item 12): each operation's
errors as RFC 9457 problem+json with the statuses it can really answer, the headers and
bodies handlers read themselves, /health; and the domain's rules as schema constraints
(item 13). The document is built from the app, no database needed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from adapters.http.app import create_app
from adapters.http.problems import api_name, invalid_value
from tests.support.settings import settings_for

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(settings=settings_for("postgresql://unused/unused"))
    return app.openapi_schema.to_schema()


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def errors_of(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"] if int(status) >= 400}


def component(document: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    name = reference["$ref"].rsplit("/", 1)[1]
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def test_every_error_response_is_documented_as_problem_json(document: dict[str, Any]) -> None:
    for label, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) < 400 or label == "GET /api/monitoring/onlyfans":
                continue
            assert list(response["content"]) == [PROBLEM], (label, status)
            schema = component(document, response["content"][PROBLEM]["schema"])
            assert schema["title"] == "ProblemDetails"
    problem = document["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "field", "errors", "missing", "found", "jobId", "summary"} <= set(
        problem["properties"]
    )


@pytest.mark.parametrize(
    ("label", "statuses"),
    [
        ("GET /api/crm/fans", {400, 401, 403, 422, 503}),
        ("GET /api/crm/fans/{fan_id}", {400, 401, 403, 404, 422, 503}),
        ("POST /api/crm/fans", {400, 401, 403, 409, 413, 422}),
        ("PATCH /api/crm/fans/{fan_id}", {400, 401, 403, 404, 409, 413, 422}),
        # 404: a scriptId that names no script of this account.
        ("POST /api/onlyfans/messages/send", {400, 401, 403, 404, 409, 413, 422}),
        ("POST /api/onlyfans/messages/{message_id}/retry", {401, 403, 404, 409, 422}),
        ("POST /api/crm/campaigns/{campaign_id}/pause", {401, 403, 404, 409, 422}),
        ("POST /api/onlyfans/import/csv", {400, 401, 403, 409, 413, 422}),
        ("POST /api/onlyfans/webhooks", {400, 401, 409, 413, 422}),
        ("GET /api/audit/head", {401, 403, 422}),
        ("GET /health", {422, 503}),
    ],
)
def test_each_operation_lists_the_errors_it_can_answer(
    document: dict[str, Any], label: str, statuses: set[int]
) -> None:
    assert errors_of(operations(document)[label]) == statuses


def test_success_answers_beside_the_default_one_are_documented(document: dict[str, Any]) -> None:
    ops = operations(document)
    created = ops["POST /api/crm/campaigns"]["responses"]
    assert component(document, created["201"]["content"]["application/json"]["schema"])[
        "title"
    ] == ("CampaignChangedOut")
    launched = component(document, created["202"]["content"]["application/json"]["schema"])
    assert launched["title"] == "BulkAcceptedOut"
    assert {"200", "201"} <= set(ops["POST /api/crm/conversations"]["responses"])
    health = ops["GET /health"]
    assert health["security"] == []
    assert component(document, health["responses"]["200"]["content"]["application/json"]["schema"])[
        "properties"
    ] == {"status": {"type": "string", "const": "ok"}}


def header_names(operation: dict[str, Any]) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}


def test_every_post_but_the_webhooks_documents_idempotency_key(document: dict[str, Any]) -> None:
    posts = {label: op for label, op in operations(document).items() if label.startswith("POST")}
    assert len(posts) >= 12
    for label, operation in posts.items():
        has_key = "Idempotency-Key" in header_names(operation)
        webhook = label in (
            "POST /api/onlyfans/webhooks",
            "POST /api/patreon/webhooks/{connection_id}",
        )
        assert has_key is not webhook, label


def test_the_webhook_documents_its_signed_body_and_headers(document: dict[str, Any]) -> None:
    webhook = operations(document)["POST /api/onlyfans/webhooks"]
    assert webhook["security"] == []
    assert {"X-OnlyFans-Account", "X-OnlyFans-Signature"} <= header_names(webhook)
    body = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"id", "type", "account", "data"}
    assert "message.purchased" in body["properties"]["type"]["enum"]


def test_the_import_documents_its_multipart_file(document: dict[str, Any]) -> None:
    upload = operations(document)["POST /api/onlyfans/import/csv"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"]
    assert schema["properties"]["file"] == {"type": "string", "format": "binary"}


def test_security_per_operation_is_kept(document: dict[str, Any]) -> None:
    ops = operations(document)
    assert ops["POST /api/crm/fans"]["security"] == [{"apiKey": ["crm:write"]}]
    assert ops["GET /api/crm/fans"]["security"] == [{"apiKey": ["crm:read"]}]


def test_domain_rules_are_schema_constraints(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    send = schemas["SendMessageBody"]["properties"]
    cents, auto = send["priceCents"]["oneOf"]
    assert cents["type"] == "integer"
    assert cents["anyOf"] == [{"const": 0}, {"minimum": 300, "maximum": 20000}]
    assert auto == {"type": "string", "enum": ["auto"]}
    assert (send["priority"]["minimum"], send["priority"]["maximum"]) == (1, 10)
    fan = schemas["CreateFanBody"]["properties"]
    assert re.fullmatch(fan["handle"]["pattern"], "@ann.b-1")
    assert not re.fullmatch(fan["handle"]["pattern"], "ann b")
    assert re.fullmatch(fan["email"]["pattern"], "ann@example.com")
    assert not re.fullmatch(fan["email"]["pattern"], "ann@localhost")
    assert fan["valueCents"]["minimum"] == 0
    assert fan["tags"]["items"]["maxLength"] == 40
    assert schemas["SendBatchBody"]["properties"]["messages"]["maxItems"] == 10
    # Bodies refuse unknown fields, and say so.
    assert schemas["CreateFanBody"]["additionalProperties"] is False
    assert schemas["Attachment"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("value_cents", "valueCents"),
        ("recipient_id", "recipientId"),
        ("fan_id", "fanId"),
        ("resume_job_id", "resumeJobId"),
        ("tags", "tags"),
    ],
)
def test_error_texts_name_fields_as_the_api_does(field: str, name: str) -> None:
    assert api_name(field) == name


def test_a_broken_rule_reads_with_the_api_name_in_its_field_and_text() -> None:
    assert invalid_value("value_cents", "must not be negative") == (
        "valueCents",
        "valueCents: must not be negative",
    )


def test_answers_document_the_headers_they_carry(document: dict[str, Any]) -> None:
    ops = operations(document)
    assert "WWW-Authenticate" in ops["GET /api/crm/fans"]["responses"]["401"]["headers"]
    assert "Retry-After" in ops["GET /api/crm/fans"]["responses"]["503"]["headers"]
    assert "Idempotent-Replayed" in ops["POST /api/crm/fans"]["responses"]["201"]["headers"]
    assert "Idempotent-Replayed" not in ops["GET /api/crm/fans"]["responses"]["200"].get(
        "headers", {}
    )
