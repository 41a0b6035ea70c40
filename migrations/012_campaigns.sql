CREATE SEQUENCE campaign_id_seq;

-- Read model: campaigns, their audience and fan-out progress. Written only by the campaigns
-- projector.
CREATE TABLE campaigns (
    campaign_id       bigint      PRIMARY KEY,
    tenant_id         text        NOT NULL,
    name              text        NOT NULL,
    kind              text        NOT NULL,
    status            text        NOT NULL,
    content           text        NOT NULL,
    attachments       jsonb       NOT NULL DEFAULT '[]',
    price_cents       integer     NOT NULL DEFAULT 0,
    priority          smallint    NOT NULL,
    recipient_count   integer,     -- explicit ids given; NULL for a segment
    segment           jsonb,
    scheduled_at      timestamptz,
    total_recipients  integer     NOT NULL DEFAULT 0,
    queued            integer     NOT NULL DEFAULT 0,
    skipped           integer     NOT NULL DEFAULT 0,
    fan_out_cursor    bigint      NOT NULL DEFAULT 0,
    fanned_out_at     timestamptz,
    created_at        timestamptz NOT NULL,
    launched_at       timestamptz,
    finished_at       timestamptz, -- completed or cancelled
    updated_at        timestamptz NOT NULL,
    version           integer     NOT NULL
);

CREATE INDEX campaigns_tenant_newest ON campaigns (tenant_id, campaign_id DESC);
-- What the campaign worker looks for: campaigns that still have work.
CREATE INDEX campaigns_open ON campaigns (campaign_id) WHERE status IN ('active', 'paused');

-- Read model: each campaign message's place in the metrics, and the metrics. Written only by
-- the campaign_metrics projector.
CREATE TABLE campaign_messages (
    message_id   uuid     PRIMARY KEY,
    campaign_id  bigint   NOT NULL,
    -- pending (queued or dispatched), held, sent (or read), failed, cancelled
    bucket       text     NOT NULL,
    delivered    boolean  NOT NULL DEFAULT false,
    opened       boolean  NOT NULL DEFAULT false,
    clicked      boolean  NOT NULL DEFAULT false
);

CREATE INDEX campaign_messages_held ON campaign_messages (campaign_id) WHERE bucket = 'held';

CREATE TABLE campaign_metrics (
    campaign_id    bigint  PRIMARY KEY,
    tenant_id      text    NOT NULL,
    queued         integer NOT NULL DEFAULT 0,
    sent           integer NOT NULL DEFAULT 0,
    delivered      integer NOT NULL DEFAULT 0,
    failed         integer NOT NULL DEFAULT 0,
    held           integer NOT NULL DEFAULT 0,
    cancelled      integer NOT NULL DEFAULT 0,
    opened         integer NOT NULL DEFAULT 0,
    clicked        integer NOT NULL DEFAULT 0,
    revenue_cents  bigint  NOT NULL DEFAULT 0,
    updated_at     timestamptz
);

-- Cancelled campaigns whose held messages the worker has still to cancel.
CREATE INDEX campaign_metrics_held ON campaign_metrics (campaign_id) WHERE held > 0;

-- The fan's conversation, beside the version that recorded it: the campaign fan-out reads
-- both from one row, so a view that lags never shows a version without its conversation.
ALTER TABLE fans ADD COLUMN conversation_id bigint;
-- "Active since" segments join each fan to its conversation's last message.
CREATE INDEX conversations_fan ON conversations (fan_id);

-- Delivery receipts and clicks reported by the platform's webhooks.
ALTER TABLE messages ADD COLUMN delivered_at timestamptz, ADD COLUMN clicked_at timestamptz;

-- The relay claims high-priority rows first (adapters/postgres/outbox.py).
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox ((queue <> 'high'), next_attempt_at, id);
