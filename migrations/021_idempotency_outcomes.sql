-- An Idempotency-Key's reservation says whether its command committed, and expires.
--
-- holder: the request holding the key. The command's append marks the reservation only while
-- this request still holds it (adapters/postgres/idempotency_keys.py), so a key freed or taken
-- over can never be marked by a late statement of the request that lost it.
-- committed: set by the command's own append, in the same statement as its events: a request
-- that failed frees its key unless this is true (its outcome is then unknown: kept, 409).
-- expires_at: after it the key may be used again; a periodic delete removes expired rows.
ALTER TABLE idempotency_keys ADD COLUMN holder uuid;
ALTER TABLE idempotency_keys ADD COLUMN committed boolean NOT NULL DEFAULT false;
ALTER TABLE idempotency_keys ADD COLUMN headers jsonb;
ALTER TABLE idempotency_keys ADD COLUMN expires_at timestamptz;

-- Reservations written before this migration: whether their command committed is unknown,
-- so they are kept (committed) until they expire, 24 hours after they were made.
UPDATE idempotency_keys SET committed = true, expires_at = created_at + interval '24 hours';
ALTER TABLE idempotency_keys ALTER COLUMN expires_at SET NOT NULL;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
