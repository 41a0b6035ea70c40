"""What authenticating a send and checking its permissions costs, counted in Python calls per
request: deterministic where CPU time on a shared machine is not (issue 16, "Figures to
measure and report": the permission check under 5% of a request's CPU).

    uv run python bench/permission_cost.py                           # this checkout
    uv run python bench/permission_cost.py --repo /path/to/checkout  # another one
    uv run python bench/permission_cost.py --save after.json --compare before.json
    DATABASE_URL=postgresql://... uv run python bench/permission_cost.py

``--repo`` runs this script again with that checkout's code (its ``.venv``'s Python if it has
one, its folder first on PYTHONPATH): only entry points present before issue 16 are used
(``bootstrap.build``, ``create_app(container=...)``, ``create_api_key``, POST
/api/crm/fans and /api/onlyfans/messages/send), so it runs against the release before it too.

On a scratch database (DATABASE_URL's server or an embedded one), the app is built in this
process and driven through httpx's ASGITransport (no sockets, no server process), as the
tests drive it. A creator key (the first release's kind, cached by the auth middleware) seeds
``--fans`` fans and sends each one message (opening its conversation, so that the timed sends
take the steady path), then sends ``--sends`` messages (the same bodies in every checkout:
seeded random, 30% PPV, as bench/send.py sends) three times:

* counted: a ``sys.setprofile`` hook counts every Python and C call, and the calls made
  inside some functions (inclusive: a coroutine's frame counts from its every resumption
  until it suspends, so what other requests do meanwhile is not counted in it): the auth
  middleware's ``authenticate_request``, the key cache's ``principal``, the route guard
  ``permission_guard``, and where the checkout has them ``act_on`` (which account a request
  acts on) and the send's ``_require_ppv`` / ``_require_content``;
* under cProfile: calls per request (pstats' total), and per file of the project the calls
  made in it (exclusive), the files of auth and permissions first;
* plain: CPU time of this process per send (client, app and asyncpg; Postgres runs apart),
  for scale only: the machine is shared.

Where the checkout has workspaces (issue 16), the same is done again with a member's key (a
chatter with every account: its key is never cached, so every request looks it up in
Postgres with its member's standing).

``--save`` writes the figures as JSON; ``--compare`` prints them beside a saved run's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FANS = "/api/crm/fans"
SEND = "/api/onlyfans/messages/send"
TEXTS = (
    "Hey! New set just dropped, want a preview?",
    "Thanks for the tip, you made my day",
    "Exclusive video for my top fans this week",
    "Good morning! What would you like to see next?",
)
# (module, qualified name) of the functions whose inclusive calls are counted, when present.
WATCHED = (
    ("adapters.http.auth", "ApiKeyMiddleware.authenticate_request"),
    ("adapters.http.auth", "KeyCache.principal"),
    ("adapters.http.permissions", "act_on"),
    ("adapters.http.permissions", "permission_guard"),
    ("adapters.http.messages", "_require_ppv"),
    ("adapters.http.messages", "_require_content"),
)
AUTH_FILES = (
    "adapters/http/auth.py",
    "adapters/http/permissions.py",
    "adapters/postgres/api_keys.py",
    "application/permissions.py",
)


# --- counting ------------------------------------------------------------------------------


class CallCounter:
    """Every call while active, in every thread it is installed in (litestar runs a sync
    guard in a worker thread), and the calls made inside the watched functions."""

    def __init__(self, watched: dict[Any, str]) -> None:
        self.watched = watched  # code object -> name
        self.active = False
        self._loop_thread = threading.get_ident()
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.in_threads = 0  # of which outside the event loop's thread
        self.inside: Counter[str] = Counter()
        self._depth: Counter[tuple[int, str]] = Counter()  # per thread

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if not self.active:
            return
        thread = threading.get_ident()
        if event == "call":
            name = self.watched.get(frame.f_code)
            if name is not None:
                self._depth[(thread, name)] += 1
        elif event != "c_call":
            if event == "return":
                name = self.watched.get(frame.f_code)
                if name is not None:
                    self._depth[(thread, name)] -= 1
            return
        self.total += 1
        self.in_threads += thread != self._loop_thread
        for (in_thread, name), depth in self._depth.items():
            if depth > 0 and in_thread == thread:
                self.inside[name] += 1


def watched_code() -> dict[Any, str]:
    import importlib

    found: dict[Any, str] = {}
    for module_name, qualname in WATCHED:
        target: Any = importlib.import_module(module_name)
        try:
            for part in qualname.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue  # not in this checkout
        found[target.__code__] = qualname
    return found


def calls_by_file(profile: cProfile.Profile, root: Path) -> Counter[str]:
    stats = pstats.Stats(profile)
    by_file: Counter[str] = Counter()
    for (filename, _, _), (_, calls, *_) in stats.stats.items():  # type: ignore[attr-defined]
        path = Path(filename)
        if path.is_absolute() and root in path.parents and ".venv" not in path.parts:
            by_file[str(path.relative_to(root))] += calls
    return by_file


async def thread_hop(n: int = 5000) -> dict[str, float]:
    """What litestar's ``sync_to_thread`` costs a call (how it runs a sync guard such as
    ``permission_guard``): CPU of this process (all threads) and wall time, per call."""
    from litestar.concurrency import sync_to_thread

    def noop() -> None:
        return None

    await sync_to_thread(noop)  # the executor's thread started
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await sync_to_thread(noop)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6}


# --- the run -------------------------------------------------------------------------------


def bodies(fan_ids: list[int], count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        body: dict[str, Any] = {
            "recipientId": str(rng.choice(fan_ids)),
            "content": rng.choice(TEXTS),
        }
        if rng.random() < 0.3:
            body["mediaUrls"] = [f"https://cdn.example.com/{rng.randrange(10**6)}.jpg"]
            body["priceCents"] = rng.choice((500, 1000, 2500))
        out.append(body)
    return out


async def send_all(client: Any, headers: dict[str, str], sends: list[dict[str, Any]]) -> None:
    for body in sends:
        response = await client.post(SEND, json=body, headers=headers)
        if response.status_code != 202:
            raise SystemExit(f"send answered {response.status_code}: {response.text}")


async def measure(
    client: Any,
    headers: dict[str, str],
    fan_ids: list[int],
    args: argparse.Namespace,
    root: Path,
    counter: CallCounter,
) -> dict[str, Any]:
    """The three passes for one key; a fresh set of message bodies each (new message ids)."""
    await send_all(client, headers, bodies(fan_ids, 200, args.seed + 1))  # warm-up
    counted = bodies(fan_ids, args.sends, args.seed + 2)
    counter.reset()
    sys.setprofile(counter)
    counter.active = True
    try:
        await send_all(client, headers, counted)
    finally:
        counter.active = False
        sys.setprofile(None)
    profile = cProfile.Profile()
    profiled = bodies(fan_ids, args.sends, args.seed + 3)
    profile.enable()
    try:
        await send_all(client, headers, profiled)
    finally:
        profile.disable()
    plain = bodies(fan_ids, args.sends, args.seed + 4)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await send_all(client, headers, plain)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = args.sends
    total_profiled = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return {
        "calls_per_send": counter.total / n,
        "thread_calls_per_send": counter.in_threads / n,
        "inside_per_send": {name: calls / n for name, calls in counter.inside.items()},
        "cprofile_calls_per_send": total_profiled / n,
        "file_calls_per_send": {
            name: calls / n for name, calls in calls_by_file(profile, root).most_common()
        },
        "cpu_ms_per_send": cpu / n * 1000,
        "wall_ms_per_send": wall / n * 1000,
    }


async def member_key(client: Any, owner: dict[str, str], container: Any) -> dict[str, str] | None:
    """A chatter of every account, where the checkout has workspaces."""
    try:
        from projections.workspaces import WorkspacesProjection
    except ImportError:
        return None
    from projections.runner import ProjectionRunner

    invite = {"role": "chatter", "accounts": "all", "name": "Chatter"}
    invited = await client.post("/api/workspace/members", json=invite, headers=owner)
    token = {"token": invited.json()["inviteToken"]}
    accepted = await client.post("/api/workspace/invites/accept", json=token)
    if accepted.status_code != 201:
        raise SystemExit(f"accept answered {accepted.status_code}: {accepted.text}")
    # The view has the member: its key is looked up as in steady state, not from the log.
    await ProjectionRunner(container.projection_store, WorkspacesProjection()).catch_up()
    return {"Authorization": f"Bearer {accepted.json()['apiKey']}"}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import _common
    import httpx

    from adapters import bootstrap
    from adapters.config import Settings
    from adapters.crypto import generate_master_key
    from adapters.http.app import create_app
    from adapters.postgres.api_keys import create_api_key

    root = Path(bootstrap.__file__).resolve().parents[1]
    commit = subprocess.run(  # noqa: ASYNC221 (once, before anything is timed)
        ["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    figures: dict[str, Any] = {"checkout": str(root), "commit": commit, "sends": args.sends}
    # In every thread started from now on (litestar's worker threads), idle until a pass.
    counter = CallCounter(watched_code())
    threading.setprofile(counter)
    async with (
        _common.database_server() as (admin_url, where, _),
        _common.scratch_databases(admin_url, 1) as (url,),
    ):
        settings = Settings.from_env(
            {"CRM_MASTER_KEY": generate_master_key()}, database_url=url, pool_max_size=4
        )
        container = await bootstrap.build(settings)
        try:
            tenant = f"bench-{random.randrange(10**9)}"
            key, _ = await create_api_key(container.pool, user_id=tenant, role="creator")
            owner = {"Authorization": f"Bearer {key}"}
            transport = httpx.ASGITransport(app=create_app(container=container))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                rng = random.Random(args.seed)
                fan_ids = []
                for i in range(args.fans):
                    fan = {
                        "name": f"Fan {i}",
                        "handle": f"fan_{i}",
                        "valueCents": rng.randrange(10**5),
                    }
                    created = await client.post(FANS, json=fan, headers=owner)
                    fan_ids.append(int(created.json()["fan"]["id"]))
                first = [{"recipientId": str(fan_id), "content": "Hi"} for fan_id in fan_ids]
                await send_all(client, owner, first)
                figures["creator"] = await measure(client, owner, fan_ids, args, root, counter)
                member = await member_key(client, owner, container)
                if member is not None:
                    figures["member"] = await measure(client, member, fan_ids, args, root, counter)
        finally:
            await container.close()
    figures["where"] = where
    figures["thread_hop"] = await thread_hop()
    return figures


# --- printing ------------------------------------------------------------------------------


def report(figures: dict[str, Any], before: dict[str, Any] | None) -> None:
    print(f"checkout {figures['checkout']} ({figures['commit']}), Postgres: {figures['where']}")
    for key in ("creator", "member"):
        if key in figures:
            _report_key(figures, key, before.get(key) if before else None)
    hop = figures["thread_hop"]
    print(
        f"\na sync guard's hop to a worker thread (litestar sync_to_thread, an empty function):"
        f" {hop['cpu_us']:.0f} µs of CPU, {hop['wall_us']:.0f} µs of wall time per call"
    )


def _report_key(figures: dict[str, Any], key: str, then: dict[str, Any] | None) -> None:
    now = figures[key]
    label = "a creator key (cached)" if key == "creator" else "a member's key (not cached)"
    print(f"\n{figures['sends']:,} sends in process (httpx ASGITransport) with {label}:")
    print(f"  {'per send':<48} {'this':>8}" + (f" {'saved':>8} {'diff':>8}" if then else ""))
    rows: list[tuple[str, str, str]] = [
        ("calls (setprofile: Python + C)", "calls_per_send", ""),
        ("  of which in worker threads", "thread_calls_per_send", ""),
        ("calls (cProfile total, loop thread)", "cprofile_calls_per_send", ""),
    ]
    inside = set(now["inside_per_send"]) | set((then or {}).get("inside_per_send", {}))
    rows += [(f"  inside {name}", "inside_per_send", name) for name in sorted(inside)]
    rows += [(f"  in {name} (cProfile)", "file_calls_per_send", name) for name in AUTH_FILES]
    rows.append(("CPU ms of this process (shared host: scale only)", "cpu_ms_per_send", ""))
    for label, field, name in rows:
        value = _figure(now, field, name)
        line = f"  {label:<48} {value:>8.1f}"
        if then is not None:
            old = _figure(then, field, name)
            # Under one call per send before: new (a share of almost nothing says nothing).
            diff = f"{(value - old) / old:+.1%}" if old >= 1 else ("new" if value >= 1 else "-")
            line += f" {old:>8.1f} {diff:>8}"
        print(line)
    checks = sum(
        now["inside_per_send"].get(name, 0.0)
        for name in ("ApiKeyMiddleware.authenticate_request", "permission_guard", "_require_ppv")
    )
    print(
        f"  auth + guard + PPV check: {checks:.0f} of {now['calls_per_send']:.0f} calls per"
        f" send ({checks / now['calls_per_send']:.1%})"
    )
    top = list(now["file_calls_per_send"].items())[:8]
    print("  most calls per send by project file: " + ", ".join(f"{f} {n:.0f}" for f, n in top))


def _figure(figures: dict[str, Any], field: str, name: str) -> float:
    value = figures.get(field, 0.0)
    return float(value.get(name, 0.0) if name else value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repo", type=Path, help="run against this checkout's code")
    parser.add_argument("--sends", type=int, default=2000, help="sends per pass (2000)")
    parser.add_argument("--fans", type=int, default=200, help="fans seeded (200)")
    parser.add_argument("--seed", type=int, default=16, help="random seed (16)")
    parser.add_argument("--save", type=Path, help="write the figures here (JSON)")
    parser.add_argument("--compare", type=Path, help="print beside these saved figures")
    args = parser.parse_args()
    if args.repo is not None and args.repo.resolve() != HERE.parent:
        repo = args.repo.resolve()
        venv = repo / ".venv" / "bin" / "python"
        python = str(venv) if venv.exists() else sys.executable
        argv = ["--sends", str(args.sends), "--fans", str(args.fans), "--seed", str(args.seed)]
        for option, path in (("--save", args.save), ("--compare", args.compare)):
            if path is not None:
                argv += [option, str(path.resolve())]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        raise SystemExit(subprocess.run([python, __file__, *argv], cwd=repo, env=env).returncode)
    from adapters.observability import configure_logging

    configure_logging("WARNING", json=False)
    figures = asyncio.run(run(args))
    if args.save:
        args.save.write_text(json.dumps(figures, indent=1))
    before = json.loads(args.compare.read_text()) if args.compare else None
    report(figures, before)


if __name__ == "__main__":
    main()
