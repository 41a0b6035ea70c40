-- Issue 21: churn prediction. churn_fans, churn_fan_days and churn_messages are written only
-- by the churn_activity projector (projections/churn_activity.py); churn_models and
-- churn_scores by the churn model's training and scoring (adapters/postgres/churn_store.py),
-- and churn_scores rows of an erased or deleted fan are removed by the projector too.

-- One row per live or deleted fan the projector has seen created; erased fans have none.
CREATE TABLE churn_fans (
    tenant_id       text        NOT NULL,
    fan_id          bigint      NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    -- As the fan was created with it: a later edit would change what was known in the past.
    subscribed_at   date,
    deleted_at      timestamptz,
    -- Reply bookkeeping, in log order: the fan's message the account has not answered yet,
    -- and the account's message the fan has not answered yet.
    fan_waiting_since      timestamptz,
    account_waiting_since  timestamptz,
    PRIMARY KEY (tenant_id, fan_id)
);

-- Per fan and UTC day, the sums a feature as of day D aggregates over the days before D.
CREATE TABLE churn_fan_days (
    tenant_id          text    NOT NULL,
    fan_id             bigint  NOT NULL,
    day                date    NOT NULL,
    purchases          integer NOT NULL DEFAULT 0,
    spend_cents        bigint  NOT NULL DEFAULT 0,
    fan_messages       integer NOT NULL DEFAULT 0,
    account_messages   integer NOT NULL DEFAULT 0,  -- one-to-one, to this fan
    campaign_messages  integer NOT NULL DEFAULT 0,
    reads              integer NOT NULL DEFAULT 0,  -- the account's messages the fan opened
    fan_replies        integer NOT NULL DEFAULT 0,  -- the fan answered the account
    -- Whole seconds: integer sums come out the same whatever batches fold them (a rebuild's
    -- and the live projector's differ); floating-point sums do not.
    fan_reply_seconds  bigint  NOT NULL DEFAULT 0,
    answers            integer NOT NULL DEFAULT 0,  -- the account answered the fan
    answer_seconds     bigint  NOT NULL DEFAULT 0,
    last_purchase_at   timestamptz,
    last_fan_message_at      timestamptz,
    last_account_message_at  timestamptz,
    PRIMARY KEY (tenant_id, fan_id, day)
);

-- Which fan an outgoing message went to: a read (MessageRead) names only the message.
CREATE TABLE churn_messages (
    message_id  uuid    NOT NULL,
    tenant_id   text    NOT NULL,
    fan_id      bigint  NOT NULL,
    PRIMARY KEY (message_id, tenant_id)
);
CREATE INDEX churn_messages_by_fan ON churn_messages (tenant_id, fan_id);

-- A trained model per account and version: standardisation and coefficients only, never a
-- fan's id or value, so erasing a fan never needs a retrain.
CREATE TABLE churn_models (
    tenant_id          text        NOT NULL,
    version            integer     NOT NULL,
    trained_at         timestamptz NOT NULL,
    position           bigint      NOT NULL,  -- the churn_activity checkpoint the features saw
    train_cutoff       date        NOT NULL,
    validation_cutoff  date        NOT NULL,
    parameters         jsonb       NOT NULL,
    metrics            jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- Each live fan's risk under the account's latest model, replaced at each scoring.
CREATE TABLE churn_scores (
    tenant_id      text             NOT NULL,
    fan_id         bigint           NOT NULL,
    model_version  integer          NOT NULL,
    risk           double precision NOT NULL,
    factors        jsonb            NOT NULL,
    PRIMARY KEY (tenant_id, fan_id)
);
CREATE INDEX churn_scores_by_risk ON churn_scores (tenant_id, risk DESC, fan_id);
