"""Who is asking, for whom: every command carries one, and it becomes the events' metadata."""

from __future__ import annotations

import msgspec

from application.ports import EventMetadata


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    actor: str
    correlation_id: str
    causation_id: str | None = None
    trace_id: str | None = None

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            tenant=self.tenant,
            actor=self.actor,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id or self.correlation_id,
            trace_id=self.trace_id,
        )
