-- An Idempotency-Key is reserved (a row without a response) before its command runs, and the
-- response filled in after: two requests with one key can no longer both run the command, and
-- a crash between the command's commit and the response leaves the key reserved instead of
-- free for a second run (a second campaign, a second fan). See adapters/http/idempotency.py.
ALTER TABLE idempotency_keys ALTER COLUMN status DROP NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN body DROP NOT NULL;
