"""The workspaces view: members (for the list and the key lookup), accounts and live shifts
of each workspace (shifts from their members' own streams, domain/shift.py). Workspaces and
shifts are a few events in a log of millions: the rest is skipped at once."""

from __future__ import annotations

from collections.abc import Sequence

from application.ports import RecordedEvent, Sql
from domain.events import EVENT_TYPES
from domain.shift import MemberShifts
from domain.workspace import Workspace

_ACCOUNT = """
INSERT INTO workspace_accounts (account_id, workspace_id, name) VALUES ($1, $2, $3)
ON CONFLICT (account_id) DO NOTHING
"""

_INVITED = """
INSERT INTO workspace_members (member_id, workspace_id, name, role, permissions, accounts,
                               status, invited_by, invited_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, 'invited', $7, $8, $9)
ON CONFLICT (member_id) DO NOTHING
"""

_JOINED = """
UPDATE workspace_members SET status = 'active', joined_at = $2
WHERE member_id = $1 AND status = 'invited'
"""

_REMOVED = """
UPDATE workspace_members SET status = 'removed', removed_at = $2 WHERE member_id = $1
"""

_SHIFT = """
INSERT INTO workspace_shifts (workspace_id, shift_id, member_id, starts_at, ends_at, accounts,
                              scheduled_by, scheduled_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (workspace_id, shift_id) DO NOTHING
"""

_SHIFT_CANCELLED = "DELETE FROM workspace_shifts WHERE workspace_id = $1 AND shift_id = $2"

_HANDLED = frozenset(
    cls
    for cls in EVENT_TYPES.values()
    if issubclass(cls, (Workspace.Event, MemberShifts.Scheduled, MemberShifts.Cancelled))
)


class WorkspacesProjection:
    name = "workspaces"
    tables = ("workspace_members", "workspace_accounts", "workspace_shifts")

    async def apply_batch(self, sql: Sql, batch: Sequence[RecordedEvent]) -> None:
        for recorded in [r for r in batch if type(r.event) in _HANDLED]:
            await self.apply(sql, recorded)

    async def apply(self, sql: Sql, recorded: RecordedEvent) -> None:
        event = recorded.event
        workspace_id = recorded.metadata.tenant
        if isinstance(event, Workspace.Founded):
            await sql.execute(_ACCOUNT, event.workspace_id, event.workspace_id, None)
        elif isinstance(event, Workspace.AccountAdded):
            await sql.execute(_ACCOUNT, event.account_id, workspace_id, event.name)
        elif isinstance(event, Workspace.MemberInvited):
            await sql.execute(
                _INVITED,
                event.member_id,
                workspace_id,
                event.name,
                event.role,
                list(event.permissions),
                list(event.accounts) if event.accounts is not None else None,
                recorded.metadata.actor,
                event.timestamp,
                event.expires_at,
            )
        elif isinstance(event, Workspace.MemberJoined):
            await sql.execute(_JOINED, event.member_id, event.timestamp)
        elif isinstance(event, Workspace.MemberRemoved):
            await sql.execute(_REMOVED, event.member_id, event.timestamp)
        elif isinstance(event, MemberShifts.Scheduled):
            await sql.execute(
                _SHIFT,
                workspace_id,
                event.shift_id,
                event.member_id,
                event.starts_at,
                event.ends_at,
                list(event.accounts) if event.accounts is not None else None,
                recorded.metadata.actor,
                event.timestamp,
            )
        elif isinstance(event, MemberShifts.Cancelled):
            await sql.execute(_SHIFT_CANCELLED, workspace_id, event.shift_id)
