"""Logs of the sender's Lambda: our structlog lines, bridged into Powertools' Logger.

fancrm's code logs with structlog everywhere; in the Lambda those lines are handed to a
Powertools Logger, which prints them as JSON on stdout with the invocation's keys (request id,
function name and memory, cold start, X-Ray trace id) beside the line's own fields. Library
loggers (asyncpg, botocore, ...) go through the same handler.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import structlog

from adapters.observability import add_trace_ids

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

# A LogRecord's own attributes: a field of that name in ``extra`` would make logging refuse
# the line, so such a field is logged with an underscore after its name.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def configure_lambda_logging(level: str = "INFO", service: str = "fancrm-sender") -> Logger:
    from aws_lambda_powertools import Logger

    logger = Logger(service=service, level=level.upper(), utc=True, use_rfc3339=True)
    # Its lines are printed by its own handler; the root logger (below) has the same one.
    logging.getLogger(service).propagate = False
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.format_exc_info,
            _to_logging_call,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_: logger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [logger.registered_handler]
    root.setLevel(logging.WARNING)
    return logger


def _to_logging_call(_: object, __: str, event: structlog.types.EventDict) -> dict[str, Any]:
    message = event.pop("event", "")
    return {
        "msg": message,
        "extra": {f"{k}_" if k in _RESERVED else k: v for k, v in event.items()},
        # The line's "location" is the caller of log.info(...): past structlog's method, its
        # proxy and Powertools' own method.
        "stacklevel": 4,
    }
