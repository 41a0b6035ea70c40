-- Read model: each account's sensitive words (domain/sensitive_words.py), for
-- GET /api/crm/sensitive-words. Sends are checked on the event store, never on this table.
-- Written only by the sensitive_words projector.
CREATE TABLE sensitive_words (
    tenant_id   text        PRIMARY KEY,
    words       jsonb       NOT NULL DEFAULT '[]',
    updated_at  timestamptz NOT NULL,
    version     integer     NOT NULL
);
