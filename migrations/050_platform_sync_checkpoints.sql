-- Where a member sync stands: the import job its pages are recorded on and the cursor of the
-- next page. Written in the transaction of the page's fans and the job's progress, so the
-- cursor never runs ahead of (or behind) what was committed: a sync stopped anywhere resumes
-- at the first page not committed.
CREATE TABLE platform_sync_checkpoints (
    connection_id  uuid        PRIMARY KEY REFERENCES platform_connections (id) ON DELETE CASCADE,
    tenant_id      text        NOT NULL,
    job_id         text        NOT NULL,
    next_cursor    text,
    pages          integer     NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Platform webhooks already applied, by tenant: Patreon's carry no id, so the key is a digest
-- of the trigger and the raw body. Inserted in the transaction of the webhook's fan events.
CREATE TABLE platform_webhook_receipts (
    tenant_id    text        NOT NULL,
    key          text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
