-- The event store: one append-only table for every stream.
CREATE TABLE events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction. Readers of the global log order by (transaction_id, position)
    -- and stop below the oldest transaction still running: positions are handed out at insert
    -- time but become visible at commit time, so position order alone lets a reader skip an
    -- event whose transaction commits after a later position was already read.
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- The optimistic-concurrency check: two writers cannot both add version N to a stream.
    UNIQUE (stream_id, version)
);

CREATE INDEX events_commit_order ON events (transaction_id, position);
CREATE INDEX events_stream_type ON events (stream_type, transaction_id, position);
CREATE INDEX events_tenant ON events ((metadata ->> 'tenant'), transaction_id, position);

-- Wake subscribers at commit. One notification per statement (not per row), and Postgres
-- folds identical notifications of one transaction into one.
CREATE FUNCTION notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events();

-- The log is append-only: refuse edits and deletes from any client.
CREATE FUNCTION refuse_event_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_changes();
