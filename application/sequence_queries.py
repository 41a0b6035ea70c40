"""Queries on the sequences read model, and the questions the automation worker asks of it."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

import msgspec

from application.ab_results import VariantCounts


class StepMetrics(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    entered: int = 0
    sent: int = 0
    replied: int = 0
    purchased: int = 0
    revenue_cents: int = 0
    exited: dict[str, int] = {}
    variants: list[VariantCounts] = []  # a step's A/B test: per variant, in the step's order


class SequenceView(msgspec.Struct, frozen=True, kw_only=True):
    sequence_id: int
    name: str
    status: str
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    exit_rules: dict[str, Any]
    reentry: str
    time_zone: str
    created_at: datetime
    updated_at: datetime
    version: int
    entered: int
    completed: int
    active: int = 0
    metrics: list[StepMetrics] = []


class SequencePage(msgspec.Struct, frozen=True):
    sequences: list[SequenceView]
    next_cursor: str | None


class DueEnrolment(msgspec.Struct, frozen=True):
    stream_id: str
    tenant: str
    version: int


class SequenceReadModel(Protocol):
    async def list_sequences(self, tenant: str, limit: int, cursor: str | None) -> SequencePage: ...

    async def get_sequence(self, tenant: str, sequence_id: int) -> SequenceView | None: ...

    async def live_triggers(self, tenants: list[str]) -> dict[str, list[tuple[int, Any]]]:
        """Per tenant, (sequence id, trigger) of its active sequences."""
        ...

    async def active_runs(self, tenant: str, fan_ids: list[int]) -> dict[int, list[str]]:
        """Per fan, the enrolment streams of its runs under way."""
        ...

    def claim_due(
        self, now: datetime, limit: int, skip: Seq[tuple[str, int]] = ()
    ) -> AbstractAsyncContextManager[Seq[DueEnrolment]]:
        """Runs whose next step is due, locked (FOR UPDATE SKIP LOCKED) while held: another
        worker's claim skips them meanwhile. ``skip``: (stream id, version) of rows to leave
        out while the view still shows them at that version."""
        ...
