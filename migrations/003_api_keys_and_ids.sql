-- API keys: only a SHA-256 of the key is kept. Keys carry 256 random bits, so a fast hash
-- is enough: there is nothing to brute-force the way there is with a password.
CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,
    key_hash    bytea       NOT NULL UNIQUE,
    user_id     text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('creator', 'auditor', 'admin')),
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Integer ids of the HTTP contract; the stream id is derived from them (fan-42).
CREATE SEQUENCE fan_id_seq;
