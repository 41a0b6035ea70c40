-- The automation worker's scans for the time-based triggers (inactive, noReply): per
-- sequence, how far through the fans it has enrolled, as a keyset place (the moment a fan's
-- spell of silence began, then its fan or conversation id). Written only by that worker.
CREATE TABLE automation_scans (
    sequence_id  bigint      PRIMARY KEY,
    after_at     timestamptz NOT NULL,
    after_id     bigint      NOT NULL
);

-- The scans walk fans by when they were last active and conversations by their last message.
CREATE INDEX analytics_fan_activity_tenant_last_active
    ON analytics_fan_activity (tenant_id, last_active_at, fan_id);
CREATE INDEX conversations_tenant_last_message
    ON conversations (tenant_id, last_message_at, conversation_id)
    WHERE unread_count = 0 AND message_count > 0;
