-- A message's attempts count its tries at the platform (they counted a person's retries), with
-- the history of those tries; its failure time goes once a later try succeeds.
--
-- Rows written before this migration counted attempts the old way and hold no history, and
-- the events were already applied: the messages read model starts again, as migration 024
-- did for the cohorts, and its projector (`crm worker projections`, `crm dev`) or `crm
-- projections rebuild messages` fills it from the whole history. Until then the messages
-- answer what has been replayed so far.

-- The live projector's lock (projections/runner.py claims it for every batch): its batch in
-- flight commits first, and it reads its checkpoint again afterwards and finds none.
SELECT pg_advisory_xact_lock(hashtextextended('messages', 0));

ALTER TABLE messages
    ADD COLUMN attempt_history jsonb NOT NULL DEFAULT '[]',
    ALTER COLUMN attempts SET DEFAULT 0;
TRUNCATE messages;
DELETE FROM projection_checkpoints WHERE name = 'messages';

-- The tenant's failed messages (the queue status's dlqCount) and, across tenants, the global
-- one: a failed message is the exception, so this index stays small.
CREATE INDEX messages_failed ON messages (tenant_id) WHERE status = 'failed';

-- An unfinished rebuild that includes the messages holds a copy of the table without the new
-- column: resumed, it would fail or swap it in. It starts over.
SELECT drop_unfinished_rebuilds_of('messages');
