"""A month of fancrm on AWS (deploy/template.yaml, us-east-1) at 10k, 100k and 1M messages a
day, from what one message costs in CPU and memory and AWS's list prices, beside the reference
guide's estimates. deploy/README.md's cost table is this script's output.

    uv run python bench/cost_model.py
    uv run python bench/cost_model.py --sender-cpu-ms 3.1 --lambda-memory-mb 256

Where the defaults come from:

- ``--sender-cpu-ms 2.5``: bench/sender_cost.py on this 2-core host (2.1 to 2.5 ms per
  message over four runs of 3,000 messages with the limiter in Redis, 2.5 ms without it),
  rounded up. It will be measured again from the Lambda zip.
- ``--sender-memory-mb 116``: the same runs' peak resident memory (114 to 116 MB);
  ``--lambda-memory-mb 512`` is the template's SenderMemoryMB, over four times it (Lambda
  gives CPU in proportion to memory).
- ``--api-cpu-ms 1.3``: bench/MEASUREMENTS.md, bench/send.py's API CPU per send.
- ``--workers-cpu-ms 2.0``: relay, projectors and sealer per message: an estimate (not
  measured here), three events and an outbox row per message.
- ``--platform-latency-ms 500``: the OnlyFans provider's answer; the reference's target is
  "< 2 s". Lambda bills the wait, so this, not the CPU, sets the sender's cost.
- ``--log-kb 1.0``: structured log lines and metric records per message, all processes (the
  sender's "message sent" line alone is ~0.3 KB).
- ``--db-kb 6.0``: PostgreSQL bytes per message kept (events, outbox, read rows, indexes).

How each line is counted is beside it in ``monthly_costs``. Free tiers are left out. Prices
are AWS's published on-demand prices for us-east-1 as of 2025 (``PRICES``), not re-read from
the web by this script: check them before a budget rests on them.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

HOURS = 730.0  # AWS's month
DAYS = 30.4

# us-east-1 on-demand list prices, USD, as published by AWS in 2025.
PRICES = {
    "lambda_gb_second_x86": 0.0000166667,
    "lambda_requests_per_million": 0.20,
    "sqs_requests_per_million": 0.40,
    "fargate_vcpu_hour_x86": 0.04048,
    "fargate_gb_hour_x86": 0.004445,
    "alb_hour": 0.0225,
    "alb_lcu_hour": 0.008,
    "nat_gateway_hour": 0.045,
    "nat_gateway_gb": 0.045,
    "cloudwatch_metric_month": 0.30,
    "cloudwatch_alarm_metric_month": 0.10,
    "cloudwatch_dashboard_month": 3.00,
    "cloudwatch_logs_ingest_gb": 0.50,
    "cloudwatch_logs_store_gb_month": 0.03,
    "secrets_manager_secret_month": 0.40,
    "rds_gp3_gb_month": 0.115,
}
RDS_HOURLY = {"db.t4g.small": 0.032, "db.t4g.medium": 0.065, "db.m6g.large": 0.152}
REDIS_HOURLY = {"cache.t4g.micro": 0.016, "cache.t4g.small": 0.032}

# The template's defaults: 2 API tasks of 0.5 vCPU / 1 GB, 4 workers (relay, projections,
# campaigns, sealer) of 0.25 vCPU / 0.5 GB.
API_TASK = (0.5, 1.0)
WORKER_TASK = (0.25, 0.5)
WORKERS = 4
# Lambda gives a function one full vCPU at 1,769 MB, and CPU in proportion below that.
MB_PER_VCPU = 1769.0
# Custom metrics the EMF lines make (adapters/metrics_emf.py): each of the twelve once without
# dimensions, and the five labelled ones also once per label value (queue: high, normal;
# outcome: sent, failed; stage: relay, sender): 12 + 5 x 2.
CUSTOM_METRICS = 22
ALARM_METRICS = 5  # two sums of two SQS metrics, and the database latency
SECRETS = 4  # master key, OnlyFans API key, database password, DATABASE_URL
# SQS requests a message makes: the relay's SendMessageBatch (10 a call), then a receive and
# a delete by the event source: taken as one each, since outside a campaign's burst a batch
# holds one message. Plus the pollers' empty long polls and the health probes' counts.
SQS_REQUESTS_PER_MESSAGE = 0.1 + 1 + 1
SQS_FIXED_REQUESTS = 2_000_000

REFERENCE = {10_000: (70, 110), 100_000: (150, 200), 1_000_000: (500, 700)}


@dataclass(frozen=True)
class PerMessage:
    sender_cpu_ms: float
    sender_memory_mb: float
    lambda_memory_mb: float
    api_cpu_ms: float
    workers_cpu_ms: float
    platform_latency_ms: float
    log_kb: float
    db_kb: float


def sizing(per_day: int) -> tuple[str, str, int, int]:
    """The database instance, Redis node type and count, and API tasks for a volume."""
    if per_day <= 50_000:
        return "db.t4g.small", "cache.t4g.micro", 1, 2
    if per_day <= 300_000:
        return "db.t4g.medium", "cache.t4g.micro", 1, 2
    return "db.m6g.large", "cache.t4g.small", 2, 2


def monthly_costs(per_day: int, m: PerMessage) -> list[tuple[str, str, float]]:
    """(component, sizing, USD a month) for ``per_day`` messages."""
    p = PRICES
    messages = per_day * DAYS
    database, redis_node, redis_nodes, api_tasks = sizing(per_day)
    # Lambda bills each invocation's wall time: the wait for the platform plus the CPU, which
    # runs at the memory's share of a vCPU. One message per invocation (see SQS above).
    vcpu_share = min(1.0, m.lambda_memory_mb / MB_PER_VCPU)
    seconds = (m.platform_latency_ms + m.sender_cpu_ms / vcpu_share) / 1000
    lambda_cost = messages * seconds * m.lambda_memory_mb / 1024 * p["lambda_gb_second_x86"]
    lambda_cost += messages / 1e6 * p["lambda_requests_per_million"]
    sqs = (messages * SQS_REQUESTS_PER_MESSAGE + SQS_FIXED_REQUESTS) / 1e6
    # Fargate: the template's tasks, and more API tasks only if a day's peak (taken as ten
    # times the mean) would keep them over half busy.
    peak_vcpu = per_day / 86_400 * 10 * (m.api_cpu_ms + m.workers_cpu_ms) / 1000
    api_tasks = max(api_tasks, math.ceil(peak_vcpu / (API_TASK[0] * 0.5)))
    vcpu = api_tasks * API_TASK[0] + WORKERS * WORKER_TASK[0]
    memory = api_tasks * API_TASK[1] + WORKERS * WORKER_TASK[1]
    fargate = HOURS * (vcpu * p["fargate_vcpu_hour_x86"] + memory * p["fargate_gb_hour_x86"])
    logs_gb = messages * m.log_kb / 1024 / 1024
    redis = redis_nodes * REDIS_HOURLY[redis_node] * HOURS
    storage_gb = max(20.0, messages * m.db_kb / 1024 / 1024)
    rds = RDS_HOURLY[database] * HOURS + storage_gb * p["rds_gp3_gb_month"]
    cloudwatch = (
        CUSTOM_METRICS * p["cloudwatch_metric_month"]
        + ALARM_METRICS * p["cloudwatch_alarm_metric_month"]
        + p["cloudwatch_dashboard_month"]
        + logs_gb * (p["cloudwatch_logs_ingest_gb"] + p["cloudwatch_logs_store_gb_month"])
    )
    nat = HOURS * p["nat_gateway_hour"] + messages * 4 / 1024 / 1024 * p["nat_gateway_gb"]
    return [
        ("Lambda, sender (GB-s and requests)", "", lambda_cost),
        ("SQS requests", "", sqs * p["sqs_requests_per_million"]),
        ("ElastiCache Redis", f"{redis_nodes}x {redis_node}", redis),
        ("RDS PostgreSQL + gp3 after a month", f"{database}, {storage_gb:.0f} GB", rds),
        ("Fargate, API + 4 workers", f"{api_tasks} API", fargate),
        ("ALB (1 LCU)", "", HOURS * (p["alb_hour"] + p["alb_lcu_hour"])),
        ("CloudWatch metrics, alarms, dashboard, logs", f"{logs_gb:.1f} GB logs", cloudwatch),
        ("Secrets Manager (4 secrets)", "", SECRETS * p["secrets_manager_secret_month"]),
        ("NAT gateway, if the VPC has none", "", nat),
    ]


def table(m: PerMessage) -> str:
    volumes = (10_000, 100_000, 1_000_000)
    costs = {v: monthly_costs(v, m) for v in volumes}
    lines = [
        f"| USD a month, us-east-1 | {' | '.join(f'{v:,} msg/day' for v in volumes)} |",
        "|---|" + "---:|" * len(volumes),
    ]
    for row, label in enumerate(name for name, _, _ in costs[volumes[0]]):
        cells = []
        for volume in volumes:
            _, detail, cost = costs[volume][row]
            cells.append(f"{cost:,.2f}" + (f" ({detail})" if detail else ""))
        lines.append(f"| {label} | {' | '.join(cells)} |")
    totals = [sum(cost for _, _, cost in costs[v]) for v in volumes]
    lines.append(f"| **total** | {' | '.join(f'**{t:,.0f}**' for t in totals)} |")
    lines.append(
        "| the reference's estimate | "
        + " | ".join(f"{REFERENCE[v][0]}-{REFERENCE[v][1]}" for v in volumes)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sender-cpu-ms", type=float, default=2.5)
    parser.add_argument("--sender-memory-mb", type=float, default=116.0)
    parser.add_argument("--lambda-memory-mb", type=float, default=512.0)
    parser.add_argument("--api-cpu-ms", type=float, default=1.3)
    parser.add_argument("--workers-cpu-ms", type=float, default=2.0)
    parser.add_argument("--platform-latency-ms", type=float, default=500.0)
    parser.add_argument("--log-kb", type=float, default=1.0)
    parser.add_argument("--db-kb", type=float, default=6.0)
    args = parser.parse_args()
    if args.lambda_memory_mb < args.sender_memory_mb * 1.5:
        parser.error("--lambda-memory-mb should leave room over the sender's peak memory")
    per_message = PerMessage(**vars(args))
    m = per_message
    print(
        f"Per message: sender {m.sender_cpu_ms} ms CPU (Lambda {m.lambda_memory_mb:.0f} MB,"
        f" peak {m.sender_memory_mb:.0f} MB), platform wait {m.platform_latency_ms:.0f} ms,"
        f" API {m.api_cpu_ms} ms, workers {m.workers_cpu_ms} ms CPU, {m.log_kb} KB logs,"
        f" {m.db_kb} KB in PostgreSQL. 2025 list prices.\n"
    )
    print(table(per_message))


if __name__ == "__main__":
    main()
