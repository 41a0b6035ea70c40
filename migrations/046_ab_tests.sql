-- Issue 19: A/B tests of campaigns. The campaigns projector owns the new campaigns columns;
-- the campaign_variants projector owns the three tables below.
ALTER TABLE campaigns
    ADD COLUMN variants jsonb,                -- [{name, content, priceCents, mediaUrls, weight}]
    ADD COLUMN ab_test jsonb,                 -- {goal, autoWinner, holdout, minPerVariant, threshold}
    ADD COLUMN awaiting_winner boolean NOT NULL DEFAULT false,
    ADD COLUMN winner smallint,
    ADD COLUMN winner_probability double precision,
    ADD COLUMN decided_at timestamptz;

-- Each variant message: what became of it, once per kind.
CREATE TABLE campaign_variant_messages (
    message_id       uuid     NOT NULL,
    tenant_id        text     NOT NULL,
    campaign_id      bigint   NOT NULL,
    variant          smallint NOT NULL,
    to_rest          boolean  NOT NULL,  -- sent as the winner, after the test
    conversation_id  bigint   NOT NULL,
    sent             boolean  NOT NULL DEFAULT false,
    opened           boolean  NOT NULL DEFAULT false,
    replied          boolean  NOT NULL DEFAULT false,
    purchased        boolean  NOT NULL DEFAULT false,
    PRIMARY KEY (message_id, tenant_id)
);

-- The variant message a fan's next message in the conversation answers, until the account
-- sends another.
CREATE TABLE campaign_variant_replies (
    conversation_id  bigint  NOT NULL,
    tenant_id        text    NOT NULL,
    message_id       uuid    NOT NULL,
    PRIMARY KEY (conversation_id, tenant_id)
);

CREATE TABLE campaign_variant_metrics (
    campaign_id    bigint   NOT NULL,
    variant        smallint NOT NULL,
    to_rest        boolean  NOT NULL,
    tenant_id      text     NOT NULL,
    queued         integer  NOT NULL DEFAULT 0,
    sent           integer  NOT NULL DEFAULT 0,
    opened         integer  NOT NULL DEFAULT 0,
    replied        integer  NOT NULL DEFAULT 0,
    purchased      integer  NOT NULL DEFAULT 0,
    revenue_cents  bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, variant, to_rest)
);

-- The campaign worker looks for tests waiting for their winner.
CREATE INDEX campaigns_awaiting_winner ON campaigns (campaign_id) WHERE awaiting_winner;
