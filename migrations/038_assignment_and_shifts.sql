-- Issue 16: conversations assigned to a member (domain/conversation.py), and shifts
-- (domain/shift.py, on the Workspace aggregate).

-- The conversations projector owns the column: NULL until a ConversationAssigned event sets
-- it, as for every conversation of an earlier release. Listing one member's conversations (or
-- the unassigned ones: a btree finds IS NULL too) keeps the keyset order of the full list.
ALTER TABLE conversations ADD COLUMN assigned_to text;
CREATE INDEX conversations_tenant_assignee_activity
    ON conversations (tenant_id, assigned_to, activity_at DESC, conversation_id DESC);

-- Read model: live shifts (a cancelled one is deleted), written only by the workspaces
-- projector. Shift ids are the workspace's own: keyed with it, so no id one workspace chooses
-- meets another's.
CREATE TABLE workspace_shifts (
    workspace_id  text        NOT NULL,
    shift_id      uuid        NOT NULL,
    member_id     text        NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    accounts      text[],     -- NULL: every account of the workspace
    scheduled_by  text        NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, shift_id)
);
-- A window's shifts: those starting before its end and at most a day (a shift's longest)
-- before its start, in keyset order; and the same for one member.
CREATE INDEX workspace_shifts_by_start ON workspace_shifts (workspace_id, starts_at, shift_id);
CREATE INDEX workspace_shifts_by_member
    ON workspace_shifts (workspace_id, member_id, starts_at, shift_id);
