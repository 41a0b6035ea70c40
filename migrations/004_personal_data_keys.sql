-- One data key per subject (a fan), wrapped by the master key (CRM_MASTER_KEY). Erasure
-- destroys the wrapped key and keeps the row as a tombstone, so no key can ever be made
-- again for that subject.
CREATE TABLE subject_keys (
    subject_id     text        PRIMARY KEY,
    wrapped_key    bytea,
    master_key_id  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    destroyed_at   timestamptz,
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

-- Proof of which master key this database's data keys are wrapped with: a service started
-- with another key refuses to start instead of writing data nobody can read.
CREATE TABLE master_key_check (
    id          integer     PRIMARY KEY CHECK (id = 1),
    key_id      text        NOT NULL,
    token       bytea       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
