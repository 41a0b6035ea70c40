"""The examples in examples/, run as an analyst runs them, over a history made through the
application: their printed numbers are the history's (revenue per day, events per type)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from adapters import bootstrap
from application import messages
from application.context import CommandContext
from application.ports import Checkpoint
from application.webhooks import WebhookEvent, handle_webhook
from tests.integration.test_parquet_export import export_to_head, log_counts
from tests.support.fresh_app import auth_for

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
    """Every payment the log holds, read from the store, with the time it counts at (up to
    the newest committed event: a read stops below other tests' open transactions)."""
    found: list[Payment] = []
    head = await container.events.head()
    checkpoint = Checkpoint()
    deadline = time.monotonic() + 30
    while checkpoint < head:
        assert time.monotonic() < deadline, f"the log was never readable up to {head}"
        batch = await container.events.read_all(checkpoint, 500)
        if not batch:
            await asyncio.sleep(0.01)
            continue
        for recorded in batch:
            event, tenant = recorded.event, recorded.metadata.tenant
            if recorded.event_type == "FanPurchaseRecorded":
                found.append(Payment(tenant, recorded.recorded_at, event.amount_cents, False))
            elif recorded.event_type == "FanTransactionImported":
                found.append(Payment(tenant, event.occurred_at, event.amount_cents, True))
        checkpoint = Checkpoint(batch[-1].transaction_id, batch[-1].position)
    return found


async def run_example(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
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

    everyone = await run_example(str(EXAMPLES / "duckdb_report.py"), str(tmp_path))
    mine = await run_example(str(EXAMPLES / "duckdb_report.py"), str(tmp_path), "--tenant", TENANT)

    counts = {name: int(n) for name, n in printed_table(everyone, "events per type")}
    assert counts == dict(await log_counts(fresh))
    expected: dict[tuple[str, date], list[int]] = {}
    for payment in paid:
        if payment.tenant == TENANT:
            day = expected.setdefault((payment.tenant, payment.at.astimezone(UTC).date()), [0] * 4)
            day[1 if payment.imported else 0] += payment.amount_cents
            day[2] += payment.amount_cents
            day[3] += 1
    assert {
        (tenant, date.fromisoformat(day)): [int(cell) for cell in cells]
        for tenant, day, *cells in printed_table(mine, "revenue per UTC day (cents)")
    } == expected
    # The history's own numbers, not only the log's: two purchases, the imports on their days.
    assert sum(day[0] for day in expected.values()) == 1_500 + 700
    assert expected[(TENANT, date(2023, 5, 1))] == [0, 2_500, 2_500, 2]
    assert expected[(TENANT, date(2023, 5, 2))] == [0, 999, 999, 1]
    assert OTHER in everyone
    assert OTHER not in mine
