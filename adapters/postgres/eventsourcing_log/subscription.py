"""Following fancrm's log for eventsourcing (``ApplicationRecorder.subscribe``): every sealed
notification after ``gt``, then the new ones as the sealer numbers them.

The next batch is read and decoded on the recorder's loop while the caller's thread processes
the current one. When the log is exhausted it polls: the sealer numbers events some moments
after they commit, so the commit's NOTIFY would wake a reader before there is anything for it.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from eventsourcing.persistence import Notification, Subscription

if TYPE_CHECKING:
    from adapters.postgres.eventsourcing_log.recorder import LogRecorder

# As fancrm's own replay reads: each batch's personal data keys are loaded in one query.
BATCH = 5000
POLL_SECONDS = 0.2


class LogSubscription(Subscription["LogRecorder"]):
    def __init__(
        self,
        recorder: LogRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
        *,
        batch: int = BATCH,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._batch_size = batch
        self._poll_seconds = poll_seconds
        self._after = gt or 0
        self._ready: deque[Notification] = deque()
        self._ahead: concurrent.futures.Future[tuple[list[Notification], int]] | None = None
        self._stopped = threading.Event()

    @property
    def reading_after(self) -> int:
        """The notification id the next read starts after."""
        return self._after

    def stop(self) -> None:
        super().stop()
        self._stopped.set()
        if self._ahead is not None:
            self._ahead.cancel()

    def __next__(self) -> Notification:
        while not self._ready and not self._has_been_stopped:
            ahead, self._ahead = self._ahead, None
            if ahead is None:
                ahead = self._recorder.follow(self._after, self._batch_size, self._topics)
            try:
                batch, self._after = ahead.result()
            except concurrent.futures.CancelledError:  # stopped meanwhile
                continue
            if not batch:
                self._stopped.wait(self._poll_seconds)
                continue
            self._ready.extend(batch)
            if len(batch) == self._batch_size:  # more is likely there: read it meanwhile
                self._ahead = self._recorder.follow(self._after, self._batch_size, self._topics)
        if self._has_been_stopped:
            raise StopIteration
        return self._ready.popleft()
