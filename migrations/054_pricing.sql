-- Issue 21: PPV pricing. The campaigns projector owns the campaigns column: a campaign priced
-- "auto" (each message priced at fan-out), shown so; a rebuild fills it for older campaigns
-- (there are none: "auto" arrives with this column).
ALTER TABLE campaigns ADD COLUMN auto_price boolean NOT NULL DEFAULT false;

-- The tables below are written only by the pricing projector (projections/pricing.py).
-- Each priced message at (or snapped to) a grid price: whether it was sent (an offer) and bought.
CREATE TABLE pricing_offers (
    message_id   uuid     NOT NULL,
    tenant_id    text     NOT NULL,
    fan_id       bigint   NOT NULL,
    price_cents  integer  NOT NULL,  -- the grid point (application/pricing.py GRID)
    sent         boolean  NOT NULL DEFAULT false,
    purchased    boolean  NOT NULL DEFAULT false,
    PRIMARY KEY (message_id, tenant_id)
);

CREATE TABLE pricing_account_counts (
    tenant_id    text     NOT NULL,
    price_cents  integer  NOT NULL,
    offers       integer  NOT NULL DEFAULT 0,
    purchases    integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, price_cents)
);

CREATE TABLE pricing_fan_counts (
    tenant_id    text     NOT NULL,
    fan_id       bigint   NOT NULL,
    price_cents  integer  NOT NULL,
    offers       integer  NOT NULL DEFAULT 0,
    purchases    integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, fan_id, price_cents)
);
