-- Analytics read models, built only from events already in the log: after this migration
-- they are empty on an existing store until `crm projections rebuild` (or their projector)
-- replays the log into them. Days and months are UTC.

-- Revenue per fan per day: one row per (fan, day) with a purchase (FanPurchaseRecorded).
CREATE TABLE analytics_fan_revenue_daily (
    fan_id         bigint  NOT NULL,
    day            date    NOT NULL,
    tenant_id      text    NOT NULL,
    revenue_cents  bigint  NOT NULL DEFAULT 0,
    purchases      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (fan_id, day)
);

CREATE INDEX analytics_fan_revenue_tenant_day
    ON analytics_fan_revenue_daily (tenant_id, day DESC, fan_id DESC);

-- One row per fan ever created (deleted and erased fans stay: their numbers are not personal
-- data): when first seen, when last active (a message from the fan or a purchase), what spent.
-- Cohorts and churn are computed from it at query time, as of the time the caller asks.
CREATE TABLE analytics_fan_activity (
    fan_id          bigint      PRIMARY KEY,
    tenant_id       text        NOT NULL,
    cohort_month    date        NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    last_active_at  timestamptz NOT NULL,
    spend_cents     bigint      NOT NULL DEFAULT 0,
    purchases       integer     NOT NULL DEFAULT 0,
    messages        integer     NOT NULL DEFAULT 0
);

CREATE INDEX analytics_fan_activity_tenant_cohort
    ON analytics_fan_activity (tenant_id, cohort_month);

-- Which campaign each campaign message belongs to, to credit its purchases.
CREATE TABLE analytics_campaign_messages (
    message_id   uuid    PRIMARY KEY,
    tenant_id    text    NOT NULL,
    campaign_id  bigint  NOT NULL
);

-- Campaign revenue per day: messages queued that day, and purchases of its messages that day.
-- Keyed by tenant too: a row never mixes two tenants' numbers, whatever ids they use.
CREATE TABLE analytics_campaign_revenue_daily (
    tenant_id        text    NOT NULL,
    campaign_id      bigint  NOT NULL,
    day              date    NOT NULL,
    messages_queued  integer NOT NULL DEFAULT 0,
    revenue_cents    bigint  NOT NULL DEFAULT 0,
    purchases        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, campaign_id, day)
);

CREATE INDEX analytics_campaign_revenue_tenant_day
    ON analytics_campaign_revenue_daily (tenant_id, day DESC, campaign_id DESC);
