-- Tamper evidence: a hash chain over the event log in commit order, written by the sealer.
-- Row n links the n-th event in (transaction_id, position) order:
--   hash = sha256(previous row's hash || canonical bytes of the event)
-- The last row is the sealer's checkpoint, so a sealed batch and its checkpoint commit together.
-- event_id is kept beside the position so that verification can tell an event that was
-- changed from one that was removed, inserted or moved.
CREATE TABLE event_chain (
    seq             bigint      PRIMARY KEY CHECK (seq > 0),
    transaction_id  xid8        NOT NULL,
    position        bigint      NOT NULL UNIQUE,
    event_id        uuid        NOT NULL,
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    sealed_at       timestamptz NOT NULL DEFAULT now()
);

-- The chain is append-only, like the log it seals.
CREATE TRIGGER event_chain_append_only BEFORE UPDATE OR DELETE ON event_chain
    FOR EACH ROW EXECUTE FUNCTION refuse_event_changes();

-- Which tenants an auditor key may read. A creator key reads its own tenant only; an admin
-- key reads every tenant; an auditor key reads the tenants granted here ('*' = all).
CREATE TABLE api_key_grants (
    key_id      text NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
    tenant_id   text NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, tenant_id)
);

-- The audit API reads the global log by tenant in commit order (dropped in 008 until now).
CREATE INDEX events_tenant ON events ((metadata ->> 'tenant'), transaction_id, position);
