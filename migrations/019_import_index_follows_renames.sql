-- A fan renamed through the API is found again by an import under its new handle
-- (adapters/postgres/imports.py, index_existing_fans).
--
-- fans.identity_version: the fan's version when its handle (or platform id) last changed;
-- a conversation opened or a purchase recorded leaves it. Rows projected before: their
-- version, which at worst has a fan's keys hashed once more.
ALTER TABLE fans ADD COLUMN identity_version integer;
UPDATE fans SET identity_version = version;
ALTER TABLE fans ALTER COLUMN identity_version SET NOT NULL;

-- import_fan_keys.seen_version: a version of the fan at which this entry's key was its own.
-- A fan none of whose entries has seen its identity_version is indexed again. NULL for
-- entries written before: those fans are indexed again once.
ALTER TABLE import_fan_keys ADD COLUMN seen_version integer;
