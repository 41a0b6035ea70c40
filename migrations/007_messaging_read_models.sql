-- Read model: conversations, newest activity first. Written only by the conversations projector.
CREATE TABLE conversations (
    conversation_id  bigint      PRIMARY KEY,
    tenant_id        text        NOT NULL,
    fan_id           bigint      NOT NULL,
    platform         text        NOT NULL,
    created_at       timestamptz NOT NULL,
    last_message_at  timestamptz,
    -- last_message_at, or created_at before the first message: the keyset sort key.
    activity_at      timestamptz NOT NULL,
    message_count    integer     NOT NULL DEFAULT 0
);

CREATE INDEX conversations_tenant_activity
    ON conversations (tenant_id, activity_at DESC, conversation_id DESC);

-- Read model: messages. Written only by the messages projector. Content is personal data:
-- kept here in clear for live fans (so it can be shown and searched), removed on erasure.
CREATE TABLE messages (
    message_id           uuid        PRIMARY KEY,
    tenant_id            text        NOT NULL,
    conversation_id      bigint      NOT NULL,
    fan_id               bigint      NOT NULL,
    direction            text        NOT NULL,
    content              text,
    price_cents          integer     NOT NULL DEFAULT 0,
    attachments          jsonb       NOT NULL DEFAULT '[]',
    priority             smallint    NOT NULL,
    status               text        NOT NULL,
    failure_reason       text,
    campaign_id          bigint,
    platform_message_id  text,
    attempts             integer     NOT NULL DEFAULT 1,
    queued_at            timestamptz NOT NULL,
    dispatched_at        timestamptz,
    sent_at              timestamptz,
    read_at              timestamptz,
    failed_at            timestamptz,
    updated_at           timestamptz NOT NULL
);

CREATE INDEX messages_conversation ON messages (conversation_id, queued_at DESC, message_id DESC);
CREATE INDEX messages_fan ON messages (fan_id);
CREATE INDEX messages_tenant_status ON messages (tenant_id, status);
