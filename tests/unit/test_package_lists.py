"""The Lambda package's list of services-only dependencies stays true to pyproject.toml."""

from __future__ import annotations

import re
import tomllib

from adapters.cli_package import OWN_PACKAGES, ROOT, SERVICE_ONLY


def _runtime_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        re.split(r"[\[<>=~! ;]", spec, maxsplit=1)[0].lower() for spec in project["dependencies"]
    }


def test_each_pruned_dependency_is_a_runtime_dependency_of_the_project() -> None:
    assert set(SERVICE_ONLY) <= _runtime_dependencies()


def test_the_sender_needs_its_lambda_dependency_and_the_zip_carries_fancrms_packages() -> None:
    assert "aws-lambda-powertools" in _runtime_dependencies()
    assert "aws-lambda-powertools" not in SERVICE_ONLY
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert set(OWN_PACKAGES) == set(wheel["targets"]["wheel"]["packages"])
