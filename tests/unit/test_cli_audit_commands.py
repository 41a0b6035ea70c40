"""`crm audit verify` and `crm worker sealer` are wired into the `crm` command, and the audit
module stands on its own (it used to import adapters.cli back, a cycle)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from adapters import cli, cli_audit
from adapters.embedded import DEFAULT_DATA_DIR


def test_crm_audit_verify_takes_an_expected_head() -> None:
    args = cli._parser().parse_args(["audit", "verify", "--expect", "7:" + "ab" * 32])

    assert (args.action, args.expect) == ("verify", "7:" + "ab" * 32)
    assert args.data_dir == Path(DEFAULT_DATA_DIR)


def test_crm_worker_sealer_runs_the_sealer_worker() -> None:
    args = cli._parser().parse_args(["worker", "sealer", "--data-dir", "/tmp/x"])

    assert (args.kind, args.data_dir) == ("sealer", Path("/tmp/x"))
    assert callable(args.func)


def test_the_audit_commands_do_not_import_the_crm_command() -> None:
    tree = ast.parse(inspect.getsource(cli_audit))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }

    assert "adapters.cli" not in imported


@pytest.mark.parametrize("expect", ["7", "x:" + "ab" * 32, "7:abc"])
def test_a_malformed_expected_head_is_refused(expect: str) -> None:
    with pytest.raises(SystemExit, match="POSITION:HASH"):
        cli_audit._parse_expect(expect)
