"""What `crm dev` prints once it serves: every URL, the development key, commands to paste.

The commands must reach the stack that printed them from another terminal: the operational
commands find the database from DATABASE_URL, else from the data folder, so the banner spells
out whichever of the two this stack was started with.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from adapters.config import Settings
from adapters.embedded import DEFAULT_DATA_DIR


@dataclass(frozen=True)
class DevStack:
    settings: Settings
    base_url: str
    key: str
    user: str
    data_dir: Path
    # The OnlyFans simulator serves onlyfans_api_url (ONLYFANS_API_URL was not set).
    simulated: bool
    # DATABASE_URL came from the environment, not the data folder's embedded Postgres.
    database_from_env: bool


def crm_command(stack: DevStack, *args: str) -> str:
    """A `crm` command line that reaches this stack, as a person pastes it in a shell."""
    words = ["uv", "run", "crm", *args]
    if stack.data_dir.resolve() != Path(DEFAULT_DATA_DIR).resolve():
        # Absolute: the default folder is relative to where `crm dev` runs, another one
        # should work from any directory.
        words += ["--data-dir", str(stack.data_dir.resolve())]
    line = shlex.join(words)
    if stack.database_from_env:
        line = f"DATABASE_URL={shlex.quote(stack.settings.database_url)} {line}"
    return line


def platform_description(stack: DevStack) -> str:
    if stack.simulated:
        return "the simulator in this process (ONLYFANS_API_URL to use another)"
    return "from ONLYFANS_API_URL (no simulator runs)"


def queue_description(settings: Settings) -> str:
    if settings.queue_backend == "sqs":
        return f"SQS at {settings.sqs_endpoint_url} (queues {settings.sqs_queue_prefix}-*)"
    return "PostgreSQL (table queue_messages)"


def banner(stack: DevStack) -> str:
    settings, base, key = stack.settings, stack.base_url, stack.key
    return f"""
fancrm is running (Ctrl-C stops everything)

  API           {base}/api/crm/fans
  OpenAPI docs  {base}/schema/swagger   (spec: {base}/schema/openapi.json)
  Live inbox    {base}/inbox   (sign in with the key below)
  PostgreSQL    {settings.database_url}
  Redis         {settings.redis_url}
  Queue         {queue_description(settings)}
  OnlyFans      {settings.onlyfans_api_url}   ({platform_description(stack)})
  Fansly        {settings.fansly_api_url}   (a second simulator unless FANSLY_API_URL is set)
  Health        {base}/api/monitoring/onlyfans   (with the key below)
  Metrics       {base}/metrics   (Prometheus text; OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set)

  Development key for user {stack.user}:
    Authorization: Bearer {key}

  Try it:
    curl -s -X POST {base}/api/crm/fans \\
      -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
      -d '{{"name": "John Doe", "handle": "@johndoe", "valueCents": 50000}}'
    curl -s {base}/api/crm/fans -H 'Authorization: Bearer {key}'

  Other commands against this stack (from this folder, in another terminal):
    {crm_command(stack, "apikey", "create", "--user", "2", "--role", "creator")}
    {crm_command(stack, "projections", "status")}
"""
