-- The transactional outbox: queue messages written in the same transaction as the events
-- that caused them, relayed to the queue after commit. A row is deleted once the queue
-- accepted it. Bodies never hold personal data in clear (sealed with the fan's key).
CREATE TABLE outbox (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text        NOT NULL,
    message_id       text        NOT NULL,
    body             text        NOT NULL,
    attributes       jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Failed sends wait 1 s, 2 s, 4 s between attempts; then the message is recorded failed.
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text
);

CREATE INDEX outbox_due ON outbox (next_attempt_at, id);

-- Integer conversation ids of the HTTP contract. Each fan has at most one conversation: the
-- Fan aggregate records it (FanConversationOpened), so two concurrent first messages to a
-- fan conflict on the fan's stream instead of starting two conversations.
CREATE SEQUENCE conversation_id_seq;

-- Responses to POST requests sent with an Idempotency-Key header, replayed on a retry.
CREATE TABLE idempotency_keys (
    tenant_id     text        NOT NULL,
    key           text        NOT NULL,
    request_hash  bytea       NOT NULL,
    status        smallint    NOT NULL,
    body          bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
