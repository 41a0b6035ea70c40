-- GET /api/crm/messages: a tenant's messages newest queued first, narrowed by status or by
-- campaign (by conversation, 007's messages_conversation serves). Each index is the filter
-- followed by the list's order, so a page reads only its own rows; failed messages, the ones
-- a person looks for, are few among many sent ones.
CREATE INDEX messages_tenant_queued ON messages (tenant_id, queued_at DESC, message_id DESC);
CREATE INDEX messages_tenant_status_queued
    ON messages (tenant_id, status, queued_at DESC, message_id DESC);
CREATE INDEX messages_tenant_campaign_queued
    ON messages (tenant_id, campaign_id, queued_at DESC, message_id DESC)
    WHERE campaign_id IS NOT NULL;
-- The new status index begins with every column of 007's, which it makes redundant.
DROP INDEX IF EXISTS messages_tenant_status;

-- The dead-letter list (GET /api/onlyfans/dlq) shows a message's first failure beside its last
-- (failed_at, which each failure overwrites). Messages that failed before this migration have
-- only their last one known here; a rebuild replays the log and fills in the first.
ALTER TABLE messages ADD COLUMN first_failed_at timestamptz;
UPDATE messages SET first_failed_at = failed_at WHERE failed_at IS NOT NULL;
