"""One mapping from every error to an RFC 9457 problem+json response, for the whole app."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from adapters.postgres.subject_keys import SubjectErased
from application.churn_training import ChurnModelChanged, ModelNotTrained
from application.errors import (
    ConcurrencyError,
    Forbidden,
    NotFound,
    ProjectionLagging,
    Unauthorized,
)
from domain.errors import Gone, IllegalState, InvalidValue
from domain.fan import HandleTaken
from domain.person import FanAlreadyLinked
from domain.platforms import PlatformCannotMessage
from domain.workspace import InviteUsed

log = structlog.get_logger(__name__)


class Unavailable(HTTPException):
    """Something the request needs does not answer (503)."""

    status_code = 503


PROBLEM_BASE = "https://fancrm.dev/problems/"
PROBLEM_JSON = "application/problem+json"

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-value",
    429: "too-many-requests",
    503: "unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = {
        "type": PROBLEM_BASE + (slug or _SLUGS.get(status, "error")),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def handle_error(request: Request[Any, Any, Any], error: Exception) -> Response[dict[str, Any]]:
    instance = {"instance": request.url.path}
    match error:
        case PlatformCannotMessage():
            field, detail = invalid_value(error.field, error.message)
            return problem(
                422,
                detail,
                slug="platform-cannot-message",
                field=field,
                platform=error.platform,
                **instance,
            )
        case InvalidValue():
            field, detail = invalid_value(error.field, error.message)
            return problem(422, detail, field=field, **instance)
        case InviteUsed():
            return problem(410, str(error), slug="invite-used", **instance)
        case NotFound() | Gone() | SubjectErased():
            return problem(404, "no such resource for this account", **instance)
        case ConcurrencyError():
            return problem(409, str(error), slug="version-conflict", **instance)
        case HandleTaken():
            # The holder is named by id only: the caller sent the handle, and may see the fan.
            return problem(
                409, str(error), slug="handle-taken", fanId=error.fan_id, field="handle", **instance
            )
        case FanAlreadyLinked():
            return problem(
                409,
                str(error),
                slug="fan-already-linked",
                fanId=error.fan_id,
                personId=error.person_id,
                **instance,
            )
        case ModelNotTrained():
            return problem(409, str(error), slug="model-not-trained", **instance)
        case ChurnModelChanged():
            return problem(409, str(error), slug="churn-model-changed", **instance)
        case IllegalState():
            return problem(409, str(error), slug="illegal-state", **instance)
        case Unauthorized():
            return problem(401, str(error), headers={"WWW-Authenticate": "Bearer"}, **instance)
        case Forbidden():
            return problem(403, str(error), **instance)
        case ProjectionLagging():
            return problem(
                503, str(error), slug="projection-lagging", headers={"Retry-After": "1"}, **instance
            )
        case ValidationException():
            return problem(400, _validation_detail(error), slug="validation-error", **instance)
        case HTTPException():
            return problem(error.status_code, error.detail, headers=error.headers, **instance)
    log.exception("unhandled error", path=request.url.path)
    return problem(500, "internal error", slug="internal-error", **instance)


def _validation_detail(error: ValidationException) -> str:
    extra = error.extra
    if isinstance(extra, list) and extra:
        first = extra[0]
        if isinstance(first, dict) and first.get("message"):
            key = first.get("key")
            return f"{first['message']}" + (f" (at {key})" if key else "")
    return str(error.detail)


def invalid_value(field: str, message: str) -> tuple[str, str]:
    """A broken rule as a client reads it, in a problem or a batch item: the field by its
    API name, and the text naming it so."""
    name = api_name(field)
    return name, f"{name}: {message}"


def api_name(name: str) -> str:
    """A field as the API names it (camelCase: ``value_cents`` is ``valueCents``), in every
    error text a client reads. The domain and the application name fields in their own words,
    snake_case (``price_cents``, ``recipient_ids``); this is the one place the API's names are
    applied (tests/unit/test_error_field_names.py checks the rule)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


EXCEPTION_HANDLERS = {Exception: handle_error}
