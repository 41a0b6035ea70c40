-- Per-tenant secrets that sign the OnlyFans provider's webhooks (HMAC-SHA256).
CREATE TABLE webhook_secrets (
    tenant_id   text        PRIMARY KEY,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys of commands that must take effect once (webhook event ids): inserted in the same
-- transaction as the events the command appends, so a redelivery can never count twice.
CREATE TABLE processed_once (
    key           text        PRIMARY KEY,
    processed_at  timestamptz NOT NULL DEFAULT now()
);

-- PPV revenue on the messages read model.
ALTER TABLE messages ADD COLUMN revenue_cents integer NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN purchased_at timestamptz;
