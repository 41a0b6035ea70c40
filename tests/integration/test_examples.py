"""The examples in examples/, run as an analyst runs them, over a history made through the
application: their printed numbers are the history's (revenue per weekday and hour, per day,
events per type)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from adapters import bootstrap
from adapters.postgres.event_chain_store import PostgresEventChain
from application import messages
from application.context import CommandContext
from application.ports import Checkpoint
from application.webhooks import WebhookEvent, handle_webhook
from examples import duckdb_report
from examples.revenue_by_hour import replay
from tests.support.fresh_app import auth_for
from tests.support.log_reading import committed_head, export_to_head, read_log

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TENANT = "creator-examples"
OTHER = "creator-examples-other"
# An earnings export's rows (time, amount, kind): two tips on 2023-05-01 10:00 UTC, a
# subscription on 2023-05-02 01:30 UTC (a Tuesday), which its own time zone dates the day before.
IMPORTED = [
    ("2023-05-01 10:00:00", "$12.50", "Tip"),
    ("2023-05-01 10:00:00", "$12.50", "Tip"),
    ("2023-05-01T23:30:00-02:00", "9.99", "Subscription"),
]


class Payment(NamedTuple):
    tenant: str
    at: datetime
    amount_cents: int
    imported: bool


async def buy(
    container: bootstrap.Container, api: httpx.AsyncClient, tenant: str, cents: int
) -> tuple[dict[str, str], str]:
    """A new fan of ``tenant`` bought a PPV message (sent, then the platform's purchase
    webhook); the tenant's headers and the fan's handle."""
    auth = await auth_for(container, tenant)
    handle = f"fan_{uuid.uuid4().hex[:10]}"
    fan = await api.post("/api/crm/fans", json={"handle": handle}, headers=auth)
    assert fan.status_code == 201, fan.text
    sent = await api.post(
        "/api/onlyfans/messages/send",
        json={"recipientId": fan.json()["fan"]["id"], "content": "for you", "priceCents": cents},
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["messageId"]
    ctx = CommandContext(tenant=tenant, actor="relay", correlation_id=uuid.uuid4().hex)
    await messages.record_sent(message_id, f"of-{message_id}", ctx, store=container.events)
    bought = WebhookEvent(
        id=f"wh-{uuid.uuid4()}",
        type="message.purchased",
        account=tenant,
        data={"messageId": message_id, "amountCents": cents},
    )
    await handle_webhook(bought, ctx, store=container.events, ids=container.ids)
    return auth, handle


async def make_history(container: bootstrap.Container, api: httpx.AsyncClient) -> None:
    auth, handle = await buy(container, api, TENANT, 1_500)
    await buy(container, api, TENANT, 700)
    await buy(container, api, OTHER, 4_000)
    rows = "".join(f'{when},{handle},,"{amount}",{kind}\n' for when, amount, kind in IMPORTED)
    upload = await api.post(
        "/api/onlyfans/import/transactions",
        files={"file": ("earnings.csv", f"Date,Username,Fan ID,Amount,Type\n{rows}", "text/csv")},
        headers=auth,
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["summary"]["successfulInserts"] == len(IMPORTED), upload.text


async def payments(container: bootstrap.Container) -> list[Payment]:
    """Every payment the log holds, with the time it counts at."""
    found: list[Payment] = []
    for recorded in await read_log(container):
        event, tenant = recorded.event, recorded.metadata.tenant
        if recorded.event_type == "FanPurchaseRecorded":
            found.append(Payment(tenant, recorded.recorded_at, event.amount_cents, False))
        elif recorded.event_type == "FanTransactionImported":
            found.append(Payment(tenant, event.occurred_at, event.amount_cents, True))
    return found


async def seal_to_head(container: bootstrap.Container) -> None:
    """Number every committed event in the audit chain, as the sealer does: eventsourcing's
    notifications are its numbers (adapters/postgres/eventsourcing_log)."""
    chain = PostgresEventChain(container.pool)
    head = await committed_head(container)
    deadline = time.monotonic() + 30
    while True:
        await chain.catch_up()
        sealed = await chain.head()
        if Checkpoint(sealed.transaction_id, sealed.position) >= head:
            return
        assert time.monotonic() < deadline, f"the chain never reached {head}"
        await asyncio.sleep(0.01)


async def run_example(*args: str, env: dict[str, str] | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


def printed_table(output: str, title: str) -> list[list[str]]:
    """The rows under ``title`` (its header left out), each split into its cells."""
    lines = output.split(title + "\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split() for line in lines[1:]]


async def test_the_duckdb_report_prints_the_logs_counts_and_revenue_per_day(
    fresh: bootstrap.Container, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await make_history(fresh, api)
    await export_to_head(fresh, tmp_path)
    paid = await payments(fresh)

    log = await read_log(fresh)

    mine = await run_example(str(EXAMPLES / "duckdb_report.py"), str(tmp_path), "--tenant", TENANT)
    # And everyone's, with the script's own functions in this process (no second start-up).
    everyone = duckdb_report.connect(tmp_path)

    counts = {name: int(n) for name, n in printed_table(mine, "events per type")}
    assert counts == Counter(r.event_type for r in log if r.metadata.tenant == TENANT)
    assert dict(duckdb_report.events_per_type(everyone)) == Counter(r.event_type for r in log)
    expected: dict[tuple[str, date], list[int]] = {}
    for payment in paid:
        day = expected.setdefault((payment.tenant, payment.at.astimezone(UTC).date()), [0] * 4)
        day[1 if payment.imported else 0] += payment.amount_cents
        day[2] += payment.amount_cents
        day[3] += 1
    assert {
        (tenant, date.fromisoformat(day)): [int(cell) for cell in cells]
        for tenant, day, *cells in printed_table(mine, "revenue per UTC day (cents)")
    } == {key: cells for key, cells in expected.items() if key[0] == TENANT}
    assert {
        (tenant, day): list(cells)
        for tenant, day, *cells in duckdb_report.revenue_per_day(everyone)
    } == expected
    # The history's own numbers, not only the log's: the purchases, the imports on their days.
    assert expected[(TENANT, date(2023, 5, 1))] == [0, 2_500, 2_500, 2]
    assert expected[(TENANT, date(2023, 5, 2))] == [0, 999, 999, 1]
    purchases: Counter[str] = Counter()
    for (tenant, _), cells in expected.items():
        purchases[tenant] += cells[0]
    assert purchases == {TENANT: 1_500 + 700, OTHER: 4_000}


async def test_the_revenue_projection_prints_each_weekday_and_hour_once_however_often_it_runs(
    fresh: bootstrap.Container, api: httpx.AsyncClient, fresh_database_url: str, tmp_path: Path
) -> None:
    await make_history(fresh, api)
    await seal_to_head(fresh)
    expected: dict[tuple[str, int], list[int]] = {}
    for payment in await payments(fresh):
        if payment.tenant == TENANT:
            at = payment.at.astimezone(UTC)
            hour = expected.setdefault((at.strftime("%A"), at.hour), [0] * 4)
            hour[1 if payment.imported else 0] += payment.amount_cents
            hour[2] += payment.amount_cents
            hour[3] += 1
    # No master key: a projection of payments reads no personal field.
    env = {k: v for k, v in os.environ.items() if k != "CRM_MASTER_KEY"}
    env["DATABASE_URL"] = fresh_database_url
    view = tmp_path / "revenue.db"

    first = await run_example(
        str(EXAMPLES / "revenue_by_hour.py"), str(view), "--tenant", TENANT, env=env
    )
    # Again on the same file (it resumes after the last event counted), and on a new one, in
    # this process: the script's own replay(), without a second interpreter's start-up.
    settings = {"DATABASE_URL": fresh_database_url}
    again = await asyncio.to_thread(replay, view, TENANT, settings)
    anew = await asyncio.to_thread(replay, tmp_path / "anew.db", TENANT, settings)

    printed = {
        (weekday, int(hour)): [int(cell) for cell in cells]
        for weekday, hour, *cells in (line.split() for line in first.splitlines()[1:])
    }
    assert printed == expected
    assert again == anew
    returned = {
        (r.weekday, r.hour): [r.purchases_cents, r.imported_cents, r.total_cents, r.payments]
        for r in again
    }
    assert returned == printed
    # The history's own numbers: the two tips on Monday 10h, the subscription Tuesday 1h.
    assert expected[("Monday", 10)] == [0, 2_500, 2_500, 2]
    assert expected[("Tuesday", 1)] == [0, 999, 999, 1]
    assert sum(hour[0] for hour in expected.values()) == 1_500 + 700
