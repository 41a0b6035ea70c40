-- Cohorts place a fan by the day they subscribed when it is known (an import's
-- "subscribed"/"joined" column, the API's subscribedAt), by when fancrm first saw them
-- otherwise: a fan imported today with a 2024 subscription belongs to 2024.
--
-- Rows written before this migration were placed by first-seen month only, and the events
-- that carry subscribed_at were already applied: no statement here can tell them apart
-- without replaying the log. So the cohorts read model starts again, as an analytics read
-- model does when it is added (migration 015): empty, filled from the whole history by its
-- projector (`crm worker projections`, `crm dev`) or by `crm projections rebuild
-- analytics_cohorts` (batched: faster on a long log). Until then, cohorts answer what has
-- been replayed so far: a partial answer for a while rather than wrong months for good.

-- The live projector's lock (projections/runner.py claims it for every batch): its batch in
-- flight commits first, and it reads its checkpoint again afterwards and finds none.
SELECT pg_advisory_xact_lock(hashtextextended('analytics_cohorts', 0));

ALTER TABLE analytics_fan_activity ADD COLUMN subscribed_at date;
TRUNCATE analytics_fan_activity;
DELETE FROM projection_checkpoints WHERE name = 'analytics_cohorts';

-- An unfinished rebuild that includes the cohorts holds a copy of the table without the new
-- column, and rows placed the old way: resumed, it would fail or swap them in. It starts over.
-- (A function, so that the next migration that reshapes a read model says it in one line.)
CREATE FUNCTION drop_unfinished_rebuilds_of(read_table text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    stale text;
BEGIN
    FOR stale IN
        SELECT table_schema FROM information_schema.tables
        WHERE table_name = read_table AND table_schema LIKE 'rebuild\_%'
    LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', stale);
        DELETE FROM projection_checkpoints WHERE right(name, length(stale) + 1) = '@' || stale;
    END LOOP;
END
$$;

SELECT drop_unfinished_rebuilds_of('analytics_fan_activity');
