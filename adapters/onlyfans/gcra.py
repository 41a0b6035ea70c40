"""An in-memory GCRA limiter (the simulator's per-account rate limit).

GCRA keeps one number per key, the theoretical arrival time (TAT) of the next request at the
sustained rate; a request is allowed while it is no more than ``burst`` intervals ahead of now.
It behaves like a token bucket of ``burst`` tokens refilled at ``rate`` per second, without a
refill loop. The production limiter is the same algorithm in Redis (see DESIGN.md, Sending).
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_KEYS = 10_000  # past this, forget keys whose bucket is full again (their TAT has passed)


class Gcra:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._interval = 1.0 / rate
        self._tolerance = burst * self._interval
        self._clock = clock
        self._tat: dict[str, float] = {}

    def try_acquire(self, key: str) -> float:
        """0 if the request is allowed (and counted); otherwise the seconds until it would be,
        counting nothing: a refused request does not push the key further back."""
        now = self._clock()
        new_tat = max(self._tat.get(key, now), now) + self._interval
        wait = new_tat - now - self._tolerance
        if wait > 0:
            return wait
        self._tat[key] = new_tat
        if len(self._tat) > MAX_KEYS:
            self._tat = {k: t for k, t in self._tat.items() if t > now}
        return 0.0
