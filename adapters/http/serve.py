"""Entry point for uvicorn workers of `crm serve`: each builds its own app from the environment."""

from __future__ import annotations

from litestar import Litestar

from adapters.config import Settings
from adapters.http.app import create_app
from adapters.observability import configure_logging


def app_from_env() -> Litestar:
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings=settings)
