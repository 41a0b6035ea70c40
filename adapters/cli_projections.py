"""`crm projections rebuild NAME|--all` and `crm projections status`."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from adapters import bootstrap
from adapters.config import Settings
from adapters.postgres.projection_status import projector_status
from adapters.postgres.rebuild import Progress, abandon, rebuild
from projections.base import Projection


def chosen_projections(names: list[str], every: bool) -> list[Projection]:
    known = {projection.name: projection for projection in bootstrap.all_projections()}
    if every:
        if names:
            raise SystemExit("crm: give projection names or --all, not both")
        return list(known.values())
    if not names:
        raise SystemExit(f"crm: name a projection ({', '.join(known)}) or give --all")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"crm: no projection {unknown[0]!r}; known: {', '.join(known)}")
    return [known[name] for name in dict.fromkeys(names)]


async def rebuild_command(
    settings: Settings,
    names: list[str],
    every: bool,
    batch_size: int,
    restart: bool = False,
    out: TextIO = sys.stderr,
) -> None:
    projections = chosen_projections(names, every)
    container = await bootstrap.build(settings)
    bar = ProgressBar(out)
    try:
        if restart and await abandon(container.pool, projections):
            print("dropped the unfinished rebuild; starting from position 0", file=out)
        result = await rebuild(
            container.pool,
            container.projection_store,
            projections,
            batch_size=batch_size,
            on_progress=bar.show,
        )
    finally:
        bar.end()
        await container.close()
    verb = "resumed and finished" if result.resumed else "rebuilt"
    rate = result.events / result.seconds if result.seconds else 0.0
    print(
        f"{verb} {', '.join(p.name for p in projections)}: {result.events:,} events in"
        f" {result.seconds:.1f} s ({rate:,.0f} events/s); live at position"
        f" {result.checkpoint.position}",
        file=out,
    )


class ProgressBar:
    """One line, redrawn in place on a terminal; a line every few seconds elsewhere (logs)."""

    def __init__(self, out: TextIO, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.tty = out.isatty()
        self._last_line = 0.0
        self._drawn = False

    def show(self, progress: Progress) -> None:
        if not self.tty and time.monotonic() - self._last_line < 5 and progress.remaining:
            return
        self._last_line = time.monotonic()
        total = progress.applied + progress.remaining
        done = progress.applied / total if total else 1.0
        filled = int(done * self.width)
        eta = progress.eta
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%}"
            f"  {progress.applied:,}/{total:,} events  {progress.rate:,.0f} events/s"
            f"  ETA {_duration(eta) if eta is not None else '?'}"
        )
        if self.tty:
            self.out.write("\r" + line)
            self._drawn = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def end(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


async def status_command(database_url: str, out: TextIO = sys.stdout) -> None:
    from adapters.postgres.pool import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        statuses = await projector_status(pool, bootstrap.all_projections())
        rebuilding = await rebuilds_in_progress(pool)
    finally:
        await pool.close()
    print(
        f"{'projector':<28} {'position':>10} {'lag events':>11} {'lag s':>8}  {'updated':<19}"
        "  error",
        file=out,
    )
    for s in statuses:
        updated = s.updated_at.strftime("%Y-%m-%d %H:%M:%S") if s.updated_at else "never"
        print(
            f"{s.name:<28} {s.position:>10} {s.lag_events:>11} {s.lag_seconds:>8.1f}"
            f"  {updated:<19}  {s.last_error or '-'}",
            file=out,
        )
    for name, position in rebuilding:
        print(f"{name:<28} {position:>10}  (rebuild in progress: run it again to resume)", file=out)


async def rebuilds_in_progress(pool: object) -> list[tuple[str, int]]:
    rows = await pool.fetch(  # type: ignore[attr-defined]
        "SELECT name, position FROM projection_checkpoints WHERE name LIKE '%@rebuild_%'"
        " ORDER BY name"
    )
    return [(row["name"], row["position"]) for row in rows]
