"""`crm audit verify`: the tamper evidence of the event log (`crm worker sealer` extends it)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from adapters.cli_support import add_data_dir, database_url, run_async

if TYPE_CHECKING:  # the `crm` command imports this module: keep its start-up light
    from adapters.postgres.event_chain_store import VerifyReport


def add_audit_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the event log's hash chain").add_subparsers(
        dest="action", required=True
    )
    verify = audit.add_parser(
        "verify",
        help="recompute the chain; report the first event changed, removed, inserted or moved"
        " (exit status 1 if the log was tampered with)",
    )
    verify.add_argument(
        "--expect",
        metavar="POSITION:HASH",
        help="also check the link at POSITION against a head published earlier",
    )
    add_data_dir(verify)
    verify.set_defaults(func=lambda a: run_async(_verify, a))


async def _verify(args: argparse.Namespace) -> None:
    from adapters.postgres.event_chain_store import PostgresEventChain
    from adapters.postgres.pool import create_pool

    expected = _parse_expect(args.expect) if args.expect else None
    pool = await create_pool(database_url(args), min_size=1, max_size=1)
    try:
        chain = PostgresEventChain(pool)
        report = await chain.verify()
        published = await chain.link_at(expected[0]) if expected else None
    finally:
        await pool.close()
    print(describe(report))
    if expected is not None:
        position, hash_hex = expected
        if published is None or published.hash.hex() != hash_hex:
            print(f"MISMATCH: the chain at position {position} is not the published {hash_hex}")
            raise SystemExit(1)
        print(f"position {position} matches the published hash")
    if report.tampering is not None:
        raise SystemExit(1)


def describe(report: VerifyReport) -> str:
    head = report.head
    if report.tampering is None:
        return (
            f"ok: {report.checked} events verified; head position {head.position}"
            f" hash {head.hash.hex()}"
        )
    found = report.tampering
    return (
        f"TAMPERED: {found.kind} at position {found.position} (link {found.seq} in commit"
        f" order): {found.detail}; {report.checked} events before it verified"
    )


def _parse_expect(text: str) -> tuple[int, str]:
    position, _, hash_hex = text.partition(":")
    if not position.isascii() or not position.isdigit() or len(hash_hex) != 64:
        raise SystemExit("crm: --expect takes POSITION:HASH (a 64-digit hex SHA-256)")
    return int(position), hash_hex.lower()
