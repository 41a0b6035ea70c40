-- A response kept for an Idempotency-Key replay may hold a fan's personal data in clear (the
-- answer to creating or editing a fan). Erasure forgets it, as it forgets the import index
-- (013): the append that marks a reservation committed records the streams it wrote
-- (adapters/postgres/idempotency_keys.py), and destroying a subject's key deletes every
-- reservation whose command wrote that subject's stream. Erasures are rare and the table
-- holds a day of keys: no index.
ALTER TABLE idempotency_keys ADD COLUMN streams text[];

CREATE FUNCTION forget_idempotent_responses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM idempotency_keys WHERE streams @> ARRAY[NEW.subject_id];
    RETURN NULL;
END;
$$;

CREATE TRIGGER subject_keys_forget_idempotent_responses
    AFTER INSERT OR UPDATE OF destroyed_at ON subject_keys
    FOR EACH ROW WHEN (NEW.destroyed_at IS NOT NULL)
    EXECUTE FUNCTION forget_idempotent_responses();
