-- Waiting is never a failed attempt (DESIGN.md, trust and failure rules). A message the sender
-- received but handed back untried (no rate-limit token yet, or the limiter's Redis away) adds
-- one to `deferrals`: its receive count as the port reports it, and as the dead-letter limit
-- reads it, is receive_count - deferrals. receive_count itself still grows on every receive,
-- so a receipt "<id>.<receive_count>" keeps naming one receive. A constant default: no rewrite.
ALTER TABLE queue_messages ADD COLUMN deferrals integer NOT NULL DEFAULT 0 CHECK (deferrals >= 0);

-- A creator's last processed message, for its own queue status: one index probe instead of a
-- read of every message of the account.
CREATE INDEX messages_tenant_processed ON messages (tenant_id, (greatest(sent_at, failed_at)) DESC)
    WHERE greatest(sent_at, failed_at) IS NOT NULL;
