"""Stable names for every stored event type, and which of their fields are personal data.

The names are a contract with the stored log: never rename one, never reuse one. A Python class
may move or be renamed freely as long as its entry here keeps the same name. ``SCHEMA_VERSIONS``
records the current shape of each event; older shapes are upcast on read (see the event store).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.base import DomainEvent
from domain.campaign import Campaign
from domain.conversation import Conversation
from domain.enrolment import Enrolment
from domain.fan import Fan
from domain.import_job import ImportJob
from domain.inbound import InboundMessage
from domain.message import Message
from domain.person import Person
from domain.script import Script
from domain.sensitive_words import SensitiveWords
from domain.sequence import Sequence
from domain.shift import MemberShifts
from domain.workspace import Workspace

EVENT_TYPES: dict[str, type[DomainEvent]] = {
    "FanCreated": Fan.Created,
    "FanUpdated": Fan.Updated,
    "FanDeleted": Fan.Deleted,
    "FanErased": Fan.Erased,
    "FanConversationOpened": Fan.ConversationOpened,
    "ConversationStarted": Conversation.Started,
    "ConversationAssigned": Conversation.Assigned,
    "MessageQueued": Message.Queued,
    "MessageDispatched": Message.Dispatched,
    "MessageSent": Message.Sent,
    "MessageFailed": Message.Failed,
    "MessageRequeued": Message.Requeued,
    "MessageRead": Message.Read,
    "MessagePurchased": Message.Purchased,
    "InboundMessageReceived": InboundMessage.Received,
    "FanPurchaseRecorded": Fan.PurchaseRecorded,
    # Transactions imported from an earnings export (no personal data: amount, kind, times).
    "FanTransactionImported": Fan.TransactionImported,
    "MessageDelivered": Message.Delivered,
    "MessageClicked": Message.Clicked,
    "MessageHeld": Message.Held,
    "MessageReleased": Message.Released,
    "MessageCancelled": Message.Cancelled,
    "MessageAttemptFailed": Message.AttemptFailed,
    "CampaignCreated": Campaign.Created,
    "CampaignLaunched": Campaign.Launched,
    "CampaignChunkQueued": Campaign.ChunkQueued,
    "CampaignFanOutFinished": Campaign.FanOutFinished,
    "CampaignPaused": Campaign.Paused,
    "CampaignResumed": Campaign.Resumed,
    "CampaignCancelled": Campaign.Cancelled,
    "CampaignCompleted": Campaign.Completed,
    # A/B tests of campaigns (domain/variants.py): no personal data.
    "CampaignTestPortionQueued": Campaign.TestPortionQueued,
    "CampaignWinnerChosen": Campaign.WinnerChosen,
    # CSV import jobs (domain/import_job.py); no personal data: file name, counts, row errors.
    "ImportJobStarted": ImportJob.Started,
    "ImportJobBatchImported": ImportJob.BatchImported,
    "ImportJobCompleted": ImportJob.Completed,
    "ImportJobFailed": ImportJob.Failed,
    "ImportJobResumed": ImportJob.Resumed,
    # Saved replies (domain/script.py) and an account's sensitive words: no personal data.
    "ScriptCreated": Script.Created,
    "ScriptUpdated": Script.Updated,
    "ScriptDeleted": Script.Deleted,
    "SensitiveWordsCreated": SensitiveWords.Created,
    "SensitiveWordsReplaced": SensitiveWords.Replaced,
    # Workspaces (domain/workspace.py); an invite's token is kept as its SHA-256 only.
    "WorkspaceFounded": Workspace.Founded,
    "WorkspaceAccountAdded": Workspace.AccountAdded,
    "WorkspaceRoleDefined": Workspace.RoleDefined,
    "WorkspaceMemberInvited": Workspace.MemberInvited,
    "WorkspaceMemberJoined": Workspace.MemberJoined,
    "WorkspaceMemberRemoved": Workspace.MemberRemoved,
    # One member's shifts (domain/shift.py), a stream per member: no personal data.
    "MemberShiftsOpened": MemberShifts.Opened,
    "ShiftScheduled": MemberShifts.Scheduled,
    "ShiftCancelled": MemberShifts.Cancelled,
    # Sequences (domain/sequence.py) and each fan's run through one (domain/enrolment.py):
    # templates, rules and fan ids, no personal data.
    "SequenceCreated": Sequence.Created,
    "SequenceUpdated": Sequence.Updated,
    "SequencePaused": Sequence.Paused,
    "SequenceResumed": Sequence.Resumed,
    "SequenceArchived": Sequence.Archived,
    "EnrolmentEnrolled": Enrolment.Enrolled,
    "EnrolmentStepSent": Enrolment.StepSent,
    "EnrolmentExited": Enrolment.Exited,
    "EnrolmentCompleted": Enrolment.Completed,
    # People across platforms (domain/person.py): fan and person ids only, no personal data.
    "PersonCreated": Person.Created,
    "PersonFanLinked": Person.FanLinked,
    "PersonFanUnlinked": Person.FanUnlinked,
    "FanLinkedToPerson": Fan.LinkedToPerson,
    "FanUnlinkedFromPerson": Fan.UnlinkedFromPerson,
}

SCHEMA_VERSIONS: dict[str, int] = dict.fromkeys(EVENT_TYPES, 1)

EVENT_NAMES: dict[type[DomainEvent], str] = {cls: name for name, cls in EVENT_TYPES.items()}


@dataclass(frozen=True)
class PersonalData:
    """Fields of an event that are personal data of one subject (a fan), so the event store
    keeps them encrypted with that subject's key. ``subject_field`` names the field holding
    the subject's fan id; None means the event's own stream is the subject."""

    fields: tuple[str, ...]
    subject_field: str | None = None


_FAN_PERSONAL = ("platform_id", "name", "handle", "email", "notes")

PERSONAL_DATA: dict[str, PersonalData] = {
    "FanCreated": PersonalData(_FAN_PERSONAL),
    "FanUpdated": PersonalData(("name", "handle", "email", "notes")),
    "MessageQueued": PersonalData(("content", "attachments"), subject_field="fan_id"),
    "InboundMessageReceived": PersonalData(("content",), subject_field="fan_id"),
}

# Appending one of these destroys the subject's data key in the same transaction.
ERASES_SUBJECT: frozenset[str] = frozenset({"FanErased"})
