-- Notifications now come from the writing process after commit (adapters/postgres/listen.py):
-- a trigger made every appending transaction hold the cluster-wide notify lock until its
-- commit was flushed, serialising concurrent appends.
DROP TRIGGER events_notify ON events;
DROP FUNCTION notify_events();

-- Nothing reads events by tenant yet; the audit API will add the index it needs.
DROP INDEX events_tenant;
