-- Issue 18: single-use tickets for the live stream (/api/live, /api/live/events). A browser
-- cannot set Authorization on a WebSocket, so it trades its API key for a ticket that goes in
-- the URL instead. Kept here, not in a process, so that any API process can redeem it; only
-- the SHA-256 of a ticket is stored, and redeeming deletes the row (single use).
CREATE TABLE live_tickets (
    ticket_hash  bytea PRIMARY KEY,
    -- The principal the ticket acts as (adapters/postgres/api_keys.py Principal, as JSON):
    -- the account it was issued for and the member's permissions and scope.
    principal    jsonb NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX live_tickets_expiry ON live_tickets (expires_at);
