"""Only the event store package reads or writes the ``events`` table (DESIGN.md, "The event
store boundary"): every SQL statement on it found in a string of the application code must
live in adapters/postgres/event_store/. Other code asks the store's named questions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "application", "projections", "adapters", "worker")
EVENT_STORE = Path("adapters/postgres/event_store")

# A table named ``events`` (maybe schema-qualified or quoted), not ``events_foo`` nor
# ``key_events``, after a keyword that reads or writes it: FROM (DELETE FROM, a comma join
# after it), JOIN, INTO, UPDATE, TRUNCATE [TABLE], USING.
_TABLE = r'(?:ONLY\s+)?(?:"?\w+"?\.)?"?events"?(?![\w"])'
_ALIASED = r'(?:"?\w+"?\.)?"?\w+"?(?:\s+(?:AS\s+)?\w+)?'
_ON_EVENTS = re.compile(
    rf"\b(?:(?:FROM|JOIN|INTO|UPDATE|USING)\s+|TRUNCATE\s+(?:TABLE\s+)?"
    rf"|FROM\s+{_ALIASED}(?:\s*,\s*{_ALIASED})*\s*,\s*){_TABLE}",
    re.IGNORECASE,
)


def touches_events(text: str) -> bool:
    """Whether ``text`` holds SQL that reads or writes the ``events`` table."""
    return _ON_EVENTS.search(text) is not None


def sql_on_events(source: str) -> list[int]:
    """The lines of ``source`` whose string constants (f-string parts included: a formatted
    value counts as a name) touch ``events``. Docstrings are prose and left out."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                part.value
                if isinstance(part, ast.Constant) and isinstance(part.value, str)
                else "x"
                for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings:
                continue
            text = node.value
        else:
            continue
        if touches_events(text):
            lines.add(node.lineno)
    return sorted(lines)


def test_only_the_event_store_package_holds_sql_on_events() -> None:
    found = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.is_relative_to(EVENT_STORE):
                continue
            found += [f"{relative}:{line}" for line in sql_on_events(path.read_text())]
    assert not found, (
        "SQL on the events table outside adapters/postgres/event_store/ (ask the store a named"
        " question there instead): " + ", ".join(found)
    )


def test_the_detector_finds_statements_in_every_form() -> None:
    planted = '''
"""A docstring that reads from events is prose."""
A = "SELECT position FROM events WHERE position = $1"
B = f"SELECT {COLUMNS} FROM events WHERE {where}"
C = (
    "SELECT count(*) FROM cp"
    " LEFT JOIN events e ON e.position > cp.pos"
)
D = "insert into public.events (event_id) values ($1)"
E = "DELETE FROM events WHERE stream_id = $1"
F = "TRUNCATE TABLE events"
G = "UPDATE events SET data = $1"
H = "SELECT count(*) FROM cp, events WHERE true"
I = "SELECT 1 FROM projection_checkpoints c, events e"
J = "SELECT 1 FROM " + "nothing"
'''
    assert sql_on_events(planted) == [3, 4, 6, 9, 10, 11, 12, 13, 14]


def test_other_tables_and_prose_are_not_events() -> None:
    for text in (
        "SELECT * FROM events_archive",
        "INSERT INTO key_events (id) VALUES ($1)",
        "SELECT * FROM campaign_events e",
        "the outcome events come back into the event store",
        "SELECT count(*) FROM messages WHERE status = 'failed'",
        "LISTEN events",
    ):
        assert not touches_events(text), text
    assert touches_events('SELECT 1 FROM "events"')
    assert touches_events("select 1\nfrom\n    events\nwhere true")
