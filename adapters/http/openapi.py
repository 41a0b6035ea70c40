"""What the OpenAPI document says beyond what litestar reads off a handler's signature: the
problem+json errors each operation really answers, the headers and bodies a handler reads
itself (Idempotency-Key, the webhook's signed body, the import's multipart file), and the
domain's rules on body fields as schema constraints.

Routes declare it in their decorator, ``**responses_for(...)``, beside ``**requires(...)``.
The statuses come from what the app does, once, here:

- every route: 422 for a NUL character in the path, a query parameter or a header
  (adapters/http/boundary.py);
- routes behind an API key: 401 (no or bad key) and 403 (a role without the permission);
- routes with query parameters or a body: 400 (wrong types, unknown fields, malformed JSON);
  with a body, 422 for a value breaking a domain rule and 413 beyond the body limit;
- ``found``: 404 for an id that is not this account's; ``conflict``: 409;
- ``lagging``: 503 when the read model has not reached the caller's writes in time;
- ``idempotent``: the Idempotency-Key header, with its 422 (reused for another request) and
  409 (outcome unknown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.enums import ParamType
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)
from litestar.params import PathParameter
from litestar.typing import FieldDefinition

from adapters.http.problems import PROBLEM_JSON


class RecipientErrorOut(msgspec.Struct, rename="camel"):
    recipient_id: int
    error: str


class ProblemDetails(msgspec.Struct, kw_only=True, rename="camel"):
    """An RFC 9457 problem: every error of this API, as ``application/problem+json``."""

    type: Annotated[str, msgspec.Meta(description="https://fancrm.dev/problems/<slug>")]
    title: str
    status: Annotated[int, msgspec.Meta(ge=400, le=599)]
    detail: str
    instance: Annotated[str | None, msgspec.Meta(description="The request's path")] = None
    # Extension members, each where the API uses it:
    field: Annotated[
        str | None,
        msgspec.Meta(description="The field, parameter or header (API names) at fault"),
    ] = None
    errors: Annotated[
        list[RecipientErrorOut] | None,
        msgspec.Meta(description="Bulk sends and campaign launches: why each id was refused"),
    ] = None
    missing: Annotated[
        list[str] | None, msgspec.Meta(description="CSV import: the columns required")
    ] = None
    found: Annotated[
        list[str] | None, msgspec.Meta(description="CSV import: the columns the file has")
    ] = None
    job_id: Annotated[
        str | None, msgspec.Meta(description="CSV import stopped mid-file: its job, resumable")
    ] = None
    summary: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(description="CSV import stopped mid-file: what was committed"),
    ] = None


_WHY = {
    400: "Malformed request: JSON, types, unknown fields, parameters",
    401: "No API key, or an unknown or revoked one",
    403: "The key's role may not use this route",
    404: "No such resource for this account",
    409: "Conflict with the current state (version, lifecycle, an id already used)",
    413: "The body is over the limit",
    422: "A value breaks a rule (named in `field`), or text holds a NUL character",
    503: "A read model has not reached the requested position yet: retry (Retry-After)",
}

# What Python's str.strip() removes and JSON Schema's (ECMA) \s does not match: a "non-blank"
# pattern excludes both, or the schema would allow text the domain finds blank.
NOT_BLANK = r"[^\s\u0000\u001c-\u001f\u0085]"

IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    description="A retry with the same key and body answers the first response"
    " (Idempotent-Replayed: true); the same key with another body is a 422. Kept 24 h.",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern=NOT_BLANK),
)


MessageIdPath = Annotated[
    str, PathParameter(description="A message id (UUID)", schema_extra={"format": "uuid"})
]


def responses_for(
    *,
    public: bool = False,
    params: bool = True,
    body: bool = False,
    found: bool = False,
    conflict: bool = False,
    lagging: bool = False,
    idempotent: bool = False,
    too_large: bool | None = None,
    also: Sequence[int] = (),
    success: Mapping[int, Any] | None = None,
    why: Mapping[int, str] | None = None,
    headers: Sequence[Parameter] = (),
    request_body: RequestBody | None = None,
) -> dict[str, Any]:
    """The decorator arguments documenting a route's answers beyond its own success: each
    error status as a ``ProblemDetails``, and ``success`` statuses (with their Structs) that
    the route answers besides its default one."""
    statuses = {422, *also}
    if not public:
        statuses |= {401, 403}
    if params or body:
        statuses.add(400)
    if body if too_large is None else too_large:
        statuses.add(413)
    if found:
        statuses.add(404)
    if conflict or idempotent:
        statuses.add(409)
    if lagging:
        statuses.add(503)
    reasons = {**_WHY, **(why or {})}
    responses: dict[int, ResponseSpec] = {
        status: ResponseSpec(
            ProblemDetails,
            description=reasons[status],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in sorted(statuses)
    }
    for status, model in (success or {}).items():
        responses[status] = ResponseSpec(model, description="Success", generate_examples=False)
    extra_headers = [*headers, *([IDEMPOTENCY_KEY] if idempotent else [])]
    return {
        "responses": responses,
        "operation_class": _operation(
            {str(s) for s in responses},
            extra_headers,
            request_body,
            public=public,
            replayable=idempotent,
        ),
    }


def _operation(
    declared: set[str],
    headers: Sequence[Parameter],
    request_body: RequestBody | None,
    *,
    public: bool,
    replayable: bool,
) -> type[Operation]:
    """An Operation with what the handler reads itself, not through its signature, and
    without the errors litestar documents on its own (a 400 as ``{status_code, detail,
    extra}``, which this API never answers). A public route says ``security: []``: litestar
    drops an empty list, and the operation would inherit the app's bearer key."""

    class Documented(Operation):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.parameters = [*(self.parameters or []), *headers]
            if public:
                self.security = []
            if request_body is not None:
                self.request_body = request_body
            if self.responses:
                self.responses = {
                    status: response
                    for status, response in self.responses.items()
                    if status in declared or int(status) < 400
                }
                for status, response in self.responses.items():
                    if isinstance(response, OpenAPIResponse):
                        answered = _ANSWER_HEADERS.get(status, {})
                        if replayable and int(status) < 400:
                            answered = {**answered, **_REPLAYED}
                        if answered:
                            response.headers = {**(response.headers or {}), **answered}

    return Documented


def _answer_header(description: str) -> OpenAPIHeader:
    return OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING), description=description, required=False
    )


# Headers some answers carry (optional: not every cause of the status sends them).
_ANSWER_HEADERS = {
    "401": {"WWW-Authenticate": _answer_header("Bearer: send an API key")},
    "503": {"Retry-After": _answer_header("Seconds to wait before retrying a lagging read")},
}
_REPLAYED = {
    "Idempotent-Replayed": _answer_header(
        "true: the answer stored for this Idempotency-Key, the command not run again"
    )
}


def header(name: str, description: str, *, required: bool = True, **schema: Any) -> Parameter:
    return Parameter(
        name=name,
        param_in=ParamType.HEADER,
        required=required,
        description=description,
        schema=Schema(type=OpenAPIType.STRING, **schema),
    )


def json_body(schema: Schema, description: str) -> RequestBody:
    return RequestBody(
        content={"application/json": OpenAPIMediaType(schema=schema)},
        description=description,
        required=True,
    )


def multipart_file(field: str, description: str) -> RequestBody:
    return RequestBody(
        content={
            "multipart/form-data": OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.OBJECT,
                    properties={
                        field: Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                    },
                    required=[field],
                )
            )
        },
        description=description,
        required=True,
    )


def rule(description: str, **constraints: Any) -> msgspec.Meta:
    """A domain rule on a body field, in the OpenAPI schema only: the domain checks it (422,
    naming the field), as it does for every caller; decoding does not (a 400 there would say
    less). ``constraints`` are JSON Schema's, by litestar's Schema names (``max_length``)."""
    return msgspec.Meta(
        extra_json_schema={"description": description, "extra": constraints or None}
    )


def schema(**fields: Any) -> dict[str, Any]:
    """A JSON Schema for ``rule`` (litestar copies a rule's extras as plain data: a Schema
    object there would lose its JSON names)."""
    return Schema(**fields).to_schema()


class ClosedStructs(StructSchemaPlugin):
    """Structs that refuse unknown fields (request bodies: adapters/http/schemas.Body) are
    documented so, ``additionalProperties: false``: litestar's own plugin does not say it.
    A Struct's ``openapi_rules`` (a ClassVar: Schema field names to JSON Schema values) are
    added to its schema."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        if struct.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        # A rule across fields (a name or a handle), which no field's annotation can state.
        for name, value in getattr(struct, "openapi_rules", {}).items():
            setattr(schema, name, value)
        return schema
