"""`crm export events`: the log as Parquet, read back with DuckDB: one row per event, the
log's counts per type, no personal value anywhere in the files' bytes, and a second run that
adds only what is new. `crm export tables`: the read models, readable, without personal data."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import httpx
import pytest

from adapters import bootstrap
from adapters.export.destinations import LocalFolder
from adapters.export.pseudonyms import FanPseudonyms, load_pseudonyms
from adapters.export.tables import export_tables
from application import messages
from application.context import CommandContext
from application.webhooks import WebhookEvent, handle_webhook
from tests.support.catching_up import catch_up_to_head
from tests.support.fresh_app import auth_for
from tests.support.log_reading import export_to_head, read_log
from tests.support.settings import TEST_MASTER_KEY

pytestmark = pytest.mark.timeout(180)

TENANT = "creator-export"
FANS = "/api/crm/fans"
SEND = "/api/onlyfans/messages/send"
BULK = "/api/messages/bulk"
# Every personal value the history holds; none may appear in an exported file.
PERSONAL = [
    "Quentin Exportname",
    "quentin_export_handle",
    "quentin.export@private.example",
    "lives at 7 Parquet Row",
    "Rosalind Erasedname",
    "rosalind_erased_handle",
    "rosalind.erased@private.example",
    "secret note of an erased fan",
    "A private line only for Quentin",
    "Campaign hello to each fan",
    "of-platform-id-777",
    "tag-about-quentin",
]


async def _pseudonyms(container: bootstrap.Container) -> FanPseudonyms:
    from adapters.crypto import MasterKey

    return await load_pseudonyms(container.pool, [MasterKey.parse(TEST_MASTER_KEY)])


async def log_counts(container: bootstrap.Container) -> Counter[str]:
    """Events per type, as the store reads the log, up to its newest committed event."""
    return Counter(recorded.event_type for recorded in await read_log(container))


async def make_history(container: bootstrap.Container, api: httpx.AsyncClient) -> list[int]:
    auth = await auth_for(container, TENANT)
    kept = await api.post(
        FANS,
        json={
            "name": PERSONAL[0],
            "handle": PERSONAL[1],
            "email": PERSONAL[2],
            "notes": PERSONAL[3],
            "platformId": PERSONAL[10],
            "valueCents": 4_200,
            "tags": [PERSONAL[11]],
        },
        headers=auth,
    )
    erased = await api.post(
        FANS,
        json={"name": PERSONAL[4], "handle": PERSONAL[5], "email": PERSONAL[6]},
        headers=auth,
    )
    assert kept.status_code == erased.status_code == 201, (kept.text, erased.text)
    fans = [kept.json()["fan"]["id"], erased.json()["fan"]["id"]]
    patched = await api.patch(f"{FANS}/{fans[1]}", json={"notes": PERSONAL[7]}, headers=auth)
    assert patched.status_code == 200, patched.text
    sent = await api.post(
        SEND,
        json={"recipientId": fans[0], "content": PERSONAL[8], "priceCents": 1_500},
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    bulk = await api.post(BULK, json={"recipientIds": fans, "content": PERSONAL[9]}, headers=auth)
    assert bulk.status_code in (200, 201, 202), bulk.text
    ctx = CommandContext(tenant=TENANT, actor="relay", correlation_id=uuid.uuid4().hex)
    await messages.record_sent(sent.json()["messageId"], "of-81", ctx, store=container.events)
    bought = WebhookEvent(
        id=f"wh-{uuid.uuid4()}",
        type="message.purchased",
        account=TENANT,
        data={"messageId": sent.json()["messageId"], "amountCents": 1_500},
    )
    await handle_webhook(bought, ctx, store=container.events, ids=container.ids)
    gone = await api.delete(f"{FANS}/{fans[1]}", params={"erase": "true"}, headers=auth)
    assert gone.status_code == 200, gone.text
    return fans


def exported(target: Path) -> duckdb.DuckDBPyRelation:
    return duckdb.sql(
        f"SELECT * FROM read_parquet('{target}/**/*.parquet', hive_partitioning=true)"
    )


def assert_no_personal_value(target: Path) -> None:
    """Searched in the files' bytes (written uncompressed, so text is there as it is) and in
    every value read back."""
    files = list(target.rglob("*.parquet"))
    assert files
    text = str(
        duckdb.sql(
            f"SELECT * FROM read_parquet('{target}/**/*.parquet', union_by_name=true)"
        ).fetchall()
    )
    for value in PERSONAL:
        assert value not in text
    # The search can see text at all: the tenant, stored in clear, is found.
    assert any(TENANT.encode() in path.read_bytes() for path in files)
    for path in files:
        raw = path.read_bytes()
        for value in PERSONAL:
            assert value.encode() not in raw, f"{value!r} is in {path}"


async def test_the_export_holds_one_row_per_event_and_no_personal_value(
    fresh: bootstrap.Container, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    fans = await make_history(fresh, api)
    await export_to_head(fresh, tmp_path)

    rows = exported(tmp_path)
    positions = [row[0] for row in rows.select("position").fetchall()]
    assert len(positions) == len(set(positions))
    by_type = dict(
        duckdb.sql("SELECT event_type, count(*) FROM rows GROUP BY event_type").fetchall()
    )
    assert by_type == dict(await log_counts(fresh))
    assert {"FanCreated", "FanErased", "MessageQueued", "CampaignCreated"} <= set(by_type)
    partitions = duckdb.sql("SELECT count(*) FROM rows WHERE type <> event_type").fetchall()[0]
    assert partitions == (0,)
    assert_no_personal_value(tmp_path)

    pseudonyms = await _pseudonyms(fresh)
    fan_column = {row[0] for row in duckdb.sql("SELECT DISTINCT fan FROM rows").fetchall()}
    assert {pseudonyms.of(TENANT, fan) for fan in fans} <= fan_column
    stream_ids = {row[0] for row in duckdb.sql("SELECT stream_id FROM rows").fetchall()}
    assert not {f"fan-{fan}" for fan in fans} & stream_ids
    revenue = duckdb.sql(
        "SELECT sum(amount_cents) FROM rows WHERE event_type = 'MessagePurchased'"
    ).fetchall()[0]
    assert revenue == (1_500,)


async def test_a_second_export_adds_only_the_new_events(
    fresh: bootstrap.Container, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await make_history(fresh, api)
    await export_to_head(fresh, tmp_path)
    first_files = {path: path.read_bytes() for path in tmp_path.rglob("*.parquet")}
    first_count = exported(tmp_path).count("*").fetchall()[0]

    again = await export_to_head(fresh, tmp_path)
    assert sum(report.events for report in again) == 0
    assert exported(tmp_path).count("*").fetchall()[0] == first_count

    auth = await auth_for(fresh, TENANT)
    added = await api.post(FANS, json={"name": "Later Fan"}, headers=auth)
    assert added.status_code == 201, added.text
    await export_to_head(fresh, tmp_path)

    for path, content in first_files.items():
        assert path.read_bytes() == content, f"{path} was rewritten"
    rows = exported(tmp_path)
    positions = [row[0] for row in rows.select("position").fetchall()]
    assert len(positions) == len(set(positions))
    by_type = dict(
        duckdb.sql("SELECT event_type, count(*) FROM rows GROUP BY event_type").fetchall()
    )
    assert by_type == dict(await log_counts(fresh))


async def test_the_exported_tables_read_back_without_personal_values(
    fresh: bootstrap.Container, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    fans = await make_history(fresh, api)
    await catch_up_to_head(fresh, bootstrap.all_projections())

    written = await export_tables(
        fresh.pool, await _pseudonyms(fresh), LocalFolder(tmp_path), "none"
    )

    assert_no_personal_value(tmp_path)
    pseudonyms = await _pseudonyms(fresh)
    fan_rows = duckdb.sql(f"SELECT fan, value_cents FROM '{tmp_path}/fans.parquet'").fetchall()
    # The erased fan's row is gone from the read model; the kept one's value counts its purchase.
    assert fan_rows == [(pseudonyms.of(TENANT, fans[0]), 4_200 + 1_500)]
    assert written["fans"] == 1
    statuses = duckdb.sql(
        f"SELECT campaign_id IS NULL, count(*) FROM '{tmp_path}/messages.parquet' GROUP BY 1"
    ).fetchall()
    assert sorted(statuses) == [(False, 2), (True, 1)]
    revenue = duckdb.sql(
        f"SELECT sum(revenue_cents) FROM '{tmp_path}/revenue_daily.parquet'"
    ).fetchall()
    assert revenue == [(1_500,)]
    metrics = duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/campaign_metrics.parquet'").fetchall()
    assert metrics == [(1,)]


async def crm(
    container: bootstrap.Container, *args: str, env_extra: dict[str, str] | None = None
) -> str:
    """The `crm` command in its own process, as an operator runs it; its standard output."""
    env = {
        **os.environ,
        **(env_extra or {}),
        "DATABASE_URL": container.settings.database_url,
        "CRM_MASTER_KEY": TEST_MASTER_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from adapters.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_the_crm_commands_export_events_then_only_new_ones_and_the_tables(
    fresh: bootstrap.Container, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await make_history(fresh, api)
    # The command exports what it can read now; waiting for the head keeps this test's
    # count independent of other tests' open transactions on the shared server.
    await export_to_head(fresh, tmp_path / "warm-up")
    first = await crm(fresh, "export", "events", "--to", str(tmp_path / "events"))
    total = sum((await log_counts(fresh)).values())
    assert f"exported {total} events in " in first

    second = await crm(fresh, "export", "events", "--to", str(tmp_path / "events"))
    assert "exported 0 events in 0 files" in second
    assert exported(tmp_path / "events").count("*").fetchall() == [(total,)]

    await catch_up_to_head(fresh, bootstrap.all_projections())
    tables = await crm(fresh, "export", "tables", "--to", str(tmp_path / "tables"))
    assert "fans: 1 rows" in tables
    assert sorted(path.name for path in (tmp_path / "tables").iterdir()) == [
        "campaign_metrics.parquet",
        "campaign_revenue_daily.parquet",
        "fans.parquet",
        "messages.parquet",
        "revenue_daily.parquet",
    ]


async def test_an_export_to_s3_writes_the_same_layout_and_adds_only_what_is_new(
    fresh: bootstrap.Container, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    from aiobotocore.session import get_session

    from adapters.export.destinations import S3Prefix
    from tests.support.moto import CREDENTIALS, REGION, moto_server

    await make_history(fresh, api)
    with moto_server() as endpoint:
        async with get_session().create_client(
            "s3", region_name=REGION, endpoint_url=endpoint, **CREDENTIALS
        ) as client:
            await client.create_bucket(Bucket="warehouse")
            destination = S3Prefix(client, "warehouse", "fancrm/events")
            await export_to_head(fresh, destination)
            again = await export_to_head(fresh, destination)
            aws = {
                "AWS_ENDPOINT_URL_S3": endpoint,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            }
            by_command = await crm(
                fresh, "export", "events", "--to", "s3://warehouse/cli", env_extra=aws
            )
            total = sum((await log_counts(fresh)).values())
            assert f"exported {total} events in " in by_command
            await crm(fresh, "export", "tables", "--to", "s3://warehouse/cli-tables", env_extra=aws)
            tables = await client.list_objects_v2(Bucket="warehouse", Prefix="cli-tables/")
            assert len(tables["Contents"]) == 5
            listed = await client.list_objects_v2(Bucket="warehouse", Prefix="fancrm/events/")
            for item in listed["Contents"]:
                found = await client.get_object(Bucket="warehouse", Key=item["Key"])
                async with found["Body"] as body:
                    local = tmp_path / item["Key"]
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(await body.read())

    assert sum(report.events for report in again) == 0
    assert (tmp_path / "fancrm/events/_checkpoint.json").exists()
    rows = exported(tmp_path / "fancrm/events")
    by_type = dict(rows.aggregate("event_type, count(*)", "event_type").fetchall())
    assert by_type == dict(await log_counts(fresh))
    assert_no_personal_value(tmp_path / "fancrm/events")
