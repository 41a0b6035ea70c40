"""Import row errors name the row, the column and the reason; the cell that failed goes only
into the answer of the upload itself (issue 13, finding 10), never into the log, the jobs
table, a read model or the logs. A money cell of 5,000 digits is one row's error (finding 5)."""

from __future__ import annotations

import uuid

import httpx
import pytest
import structlog

from adapters.bootstrap import Container
from tests.support.imports import JOBS, CatchUp, Headers, expected, summary, upload

pytestmark = pytest.mark.timeout(60)

TEXT_TYPES = ("text", "jsonb", "json", "character varying", "character")


async def test_a_money_cell_of_5000_digits_is_a_row_error(
    http: httpx.AsyncClient, auth: Headers
) -> None:
    content = f"handle,total spent\nann,{'9' * 5_000}\nbob,$5.00\n".encode()

    assert summary(await upload(http, auth, content)) == expected(
        2,
        1,
        errors=[
            (2, "value: is too long to be an amount of money", "total spent", f"{'9' * 59}…"),
        ],
    )


async def test_a_cell_that_fails_is_shown_to_the_uploader_and_stored_nowhere(
    http: httpx.AsyncClient, auth: Headers, container: Container, catch_up: CatchUp
) -> None:
    # An email in the money column and a name in the date column: personal data in the
    # wrong place, which must not outlive the fan's erasure in a recorded error.
    email = f"leak{uuid.uuid4().hex[:12]}@ex.com"
    name = f"Leaky {uuid.uuid4().hex}"
    content = f"handle,Total Spent,Joined\nann,{email},\nbob,1,{name}\n".encode()

    with structlog.testing.capture_logs() as logs:
        response = await upload(http, auth, content)
        await catch_up()

    errors = summary(response)["errors"]
    assert errors == [
        {"row": 2, "error": "value: is not an amount of money", "column": "Total Spent"}
        | {"value": email},
        {"row": 3, "error": "subscribedAt: is not a date", "column": "Joined", "value": name},
    ]
    history = await http.get(JOBS, headers=auth)
    assert email not in history.text
    assert name not in history.text
    assert history.json()["jobs"][0]["summary"]["errors"] == [
        {"row": 2, "error": "value: is not an amount of money"},
        {"row": 3, "error": "subscribedAt: is not a date"},
    ]
    for secret in (email, name):
        assert secret not in repr(logs)
        assert await columns_holding(container, secret) == []


async def columns_holding(container: Container, text: str) -> list[str]:
    """Every text or JSON column of every table (events, jobs, read models, ...) that holds
    ``text`` anywhere."""
    columns = await container.pool.fetch(
        """
        SELECT c.table_schema, c.table_name, c.column_name
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        WHERE t.table_type = 'BASE TABLE' AND c.data_type = ANY($1::text[])
          AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
        """,
        list(TEXT_TYPES),
    )
    assert len(columns) > 10, "the search must see the tables"
    found = []
    for schema, table, column in columns:
        name = f"{_quoted(schema)}.{_quoted(table)}"
        hits = await container.pool.fetchval(
            f"SELECT count(*) FROM {name} WHERE strpos({_quoted(column)}::text, $1) > 0",
            text,
        )
        if hits:
            found.append(f"{schema}.{table}.{column}")
    return found


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
