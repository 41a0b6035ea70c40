-- One row per projector (and per rebuild target): how far in the log it has applied.
CREATE TABLE projection_checkpoints (
    name            text PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    position        bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_error_at   timestamptz
);

-- Read model: fans. Written only by the fans projector.
CREATE TABLE fans (
    fan_id       bigint      PRIMARY KEY,
    tenant_id    text        NOT NULL,
    platform     text        NOT NULL,
    platform_id  text,
    name         text,
    handle       text,
    email        text,
    value_cents  bigint      NOT NULL DEFAULT 0,
    tags         text[]      NOT NULL DEFAULT '{}',
    notes        text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      integer     NOT NULL,
    -- Lower-cased name, handle and email: what text search matches against.
    search_text  text GENERATED ALWAYS AS (
        lower(coalesce(name, '') || ' ' || coalesce(handle, '') || ' ' || coalesce(email, ''))
    ) STORED
);

CREATE INDEX fans_tenant_newest ON fans (tenant_id, fan_id DESC);
CREATE INDEX fans_tenant_value ON fans (tenant_id, value_cents DESC, fan_id DESC);
CREATE INDEX fans_tags ON fans USING gin (tags);
