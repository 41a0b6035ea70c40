"""Who is asking, for whom: every command carries one, and it becomes the events' metadata."""

from __future__ import annotations

import msgspec

from application.ports import EventMetadata

# The processes that record, after a person's command, what became of it: the relay and the
# sender (a message queued, sent, failed), platform webhooks (read, purchased) and the campaign
# worker (a launched campaign's messages).
PROCESSES = frozenset({"relay", "sender", "webhook", "campaign-worker"})
_MEMBER = "member:"


def member_in(actor: str) -> str | None:
    """The member an event's actor names, if it names one."""
    return actor[len(_MEMBER) :] if actor.startswith(_MEMBER) else None


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    actor: str
    correlation_id: str
    causation_id: str | None = None
    trace_id: str | None = None
    # The workspace of the account acted on (its founding account's id), where it is known:
    # what the workspace shares (its scripts) is found there. Not recorded in events.
    workspace_id: str | None = None

    @property
    def member_id(self) -> str | None:
        """The workspace member running the command, if a member is (not a process, nor a
        key of the first release)."""
        return member_in(self.actor)

    def acting_for(self, member_id: str | None) -> CommandContext:
        """A process records what became of a member's message in that member's name, so that
        the audit shows who is accountable for every event of it (a purchase is earned by
        the member who sent the PPV). A person's own command keeps its actor."""
        if member_id is None or self.actor not in PROCESSES:
            return self
        return msgspec.structs.replace(self, actor=_MEMBER + member_id)

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            tenant=self.tenant,
            actor=self.actor,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id or self.correlation_id,
            trace_id=self.trace_id,
        )
