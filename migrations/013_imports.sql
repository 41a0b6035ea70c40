-- CSV import of fans (application/imports.py).

-- Write-side index: which fan an import row means. Keyed by an HMAC of (tenant, platform,
-- normalised handle or platform id) under a key wrapped by the master key
-- (adapters/postgres/imports_index.py), never the plain handle. Written in the same
-- transaction as the fans' events; the primary key stops two imports creating one fan twice.
CREATE TABLE import_fan_keys (
    tenant_id  text  NOT NULL,
    key_hash   bytea NOT NULL,
    stream_id  text  NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
);

CREATE INDEX import_fan_keys_stream ON import_fan_keys (stream_id);

-- Erasure forgets: destroying a fan's data key (the statement that appends FanErased) deletes
-- the fan's index entries in the same transaction.
CREATE FUNCTION forget_import_fan_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM import_fan_keys WHERE stream_id = NEW.subject_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER subject_keys_forget_import_fan_keys
    AFTER INSERT OR UPDATE OF destroyed_at ON subject_keys
    FOR EACH ROW WHEN (NEW.destroyed_at IS NOT NULL)
    EXECUTE FUNCTION forget_import_fan_keys();

-- Read model: import history (projections/imports.py). Written only by its projector.
CREATE TABLE import_jobs (
    job_id           text        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    file_name        text        NOT NULL,
    source           text        NOT NULL,
    actor            text        NOT NULL,
    status           text        NOT NULL,
    last_row         bigint      NOT NULL DEFAULT 1,
    inserted         bigint      NOT NULL DEFAULT 0,
    updated          bigint      NOT NULL DEFAULT 0,
    skipped          bigint      NOT NULL DEFAULT 0,
    error_count      bigint      NOT NULL DEFAULT 0,
    errors           jsonb       NOT NULL DEFAULT '[]',
    size_bytes       bigint,
    checksum_sha256  text,
    failure          text,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    version          integer     NOT NULL
);

CREATE INDEX import_jobs_tenant_newest ON import_jobs (tenant_id, started_at DESC, job_id DESC);
