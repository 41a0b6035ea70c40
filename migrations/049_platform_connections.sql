-- An account's connections to its platforms (issue 20): the credentials a sync or a webhook
-- needs, sealed with the master key (AES-256-GCM, the connection's id as associated data, so
-- a sealed blob moved to another row does not open). Nothing here is ever answered back or
-- logged; the health columns say how the last call to the platform went.
CREATE TABLE platform_connections (
    id             uuid        PRIMARY KEY,
    tenant_id      text        NOT NULL,
    platform       text        NOT NULL CHECK (platform IN ('onlyfans', 'fansly', 'patreon')),
    campaign_id    text,
    api_url        text,
    key_id         text        NOT NULL,
    sealed         bytea       NOT NULL,
    -- Whether the sealed credentials hold a webhook secret: listed without unsealing them.
    has_webhook_secret boolean NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_sync_at   timestamptz,
    health         text        NOT NULL DEFAULT 'unknown'
                               CHECK (health IN ('unknown', 'ok', 'failing')),
    health_reason  text,
    checked_at     timestamptz
);
CREATE INDEX platform_connections_tenant ON platform_connections (tenant_id, created_at);
