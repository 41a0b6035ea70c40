-- Issue 16: workspaces, their members and roles (domain/workspace.py).
--
-- Every tenant of the first release becomes the one account of a workspace of its own: the
-- workspace is named after it (its id is the tenant's) and its stream stays empty until its
-- first command (the aggregate then founds it with that account). Each key made before
-- belongs to the workspace of its own tenant, so every old key and answer works as before.
--
-- A member's keys are kinds of their own ('member'): the member's id, the workspace it belongs
-- to. What a member may do is read, at each request, from the workspace views below joined
-- in the same lookup; removing a member revokes its keys (revoked_at) before its removal is
-- appended (application/workspaces.py).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('creator', 'auditor', 'admin', 'member'));
ALTER TABLE api_keys ADD COLUMN workspace_id text;
ALTER TABLE api_keys ADD COLUMN member_id text;
UPDATE api_keys SET workspace_id = user_id;
ALTER TABLE api_keys ALTER COLUMN workspace_id SET NOT NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_member_kind
    CHECK ((role = 'member') = (member_id IS NOT NULL));
CREATE INDEX api_keys_member ON api_keys (member_id) WHERE member_id IS NOT NULL;

-- The workspaces view (projections/workspaces.py owns these tables).
CREATE TABLE workspace_members (
    member_id     text        PRIMARY KEY,
    workspace_id  text        NOT NULL,
    name          text,
    role          text        NOT NULL,
    permissions   text[]      NOT NULL,
    accounts      text[],     -- NULL: every account of the workspace
    status        text        NOT NULL,
    invited_by    text        NOT NULL,
    invited_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    joined_at     timestamptz,
    removed_at    timestamptz
);
CREATE INDEX workspace_members_by_workspace ON workspace_members (workspace_id, invited_at, member_id);

CREATE TABLE workspace_accounts (
    account_id    text        PRIMARY KEY,
    workspace_id  text        NOT NULL,
    name          text        -- NULL: the founding account (a tenant of the first release)
);
