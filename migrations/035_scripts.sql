-- Saved replies (domain/script.py): ids from their own sequence, as fans and campaigns.
CREATE SEQUENCE script_id_seq;

-- Read model: one row per live script, with what the messages sent from it did. Written only
-- by the scripts projector.
CREATE TABLE scripts (
    script_id      bigint      PRIMARY KEY,
    tenant_id      text        NOT NULL,
    name           text        NOT NULL,
    content        text        NOT NULL,
    price_cents    integer     NOT NULL DEFAULT 0,
    attachments    jsonb       NOT NULL DEFAULT '[]',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    version        integer     NOT NULL,
    sent           integer     NOT NULL DEFAULT 0,  -- messages from it the platform accepted
    purchased      integer     NOT NULL DEFAULT 0,  -- of those, PPVs a fan paid for
    revenue_cents  bigint      NOT NULL DEFAULT 0
);

CREATE INDEX scripts_tenant_newest ON scripts (tenant_id, script_id DESC);

-- Each message queued from a script, so that its later events (sent, purchased) find the
-- script to count on. Messages are named per tenant (migration 020).
CREATE TABLE script_messages (
    message_id  uuid    NOT NULL,
    tenant_id   text    NOT NULL,
    script_id   bigint  NOT NULL,
    sent        boolean NOT NULL DEFAULT false,
    purchased   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (message_id, tenant_id)
);
