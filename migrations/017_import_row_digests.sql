-- Re-importing an unchanged file without replaying every fan (application/import_batch.py):
-- an index entry remembers the keyed digest of the row an import last applied to its fan and
-- the fan's stream version just after. A row with that digest, for a fan whose stream is still
-- at that version, would change nothing: it is skipped without loading the fan. NULL for fans
-- indexed from the read model and for entries written before this migration.
ALTER TABLE import_fan_keys ADD COLUMN row_digest bytea, ADD COLUMN fan_version integer;
