-- The Postgres-backed message queue (adapters/postgres/queue.py): Amazon SQS's semantics on one
-- table. A row is a message not yet deleted; its queue is 'high', 'normal' or their dead-letter
-- queues ('high.dlq', 'normal.dlq'), each possibly behind a name prefix, so that moving a message
-- to its dead-letter queue is an UPDATE of one column and a dead-letter queue is a queue like
-- any other (it can be received from, and its messages deleted).
CREATE TABLE queue_messages (
    -- Also the message id; receipts are "<id>.<receive_count>" (see below).
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue          text        NOT NULL,
    body           text        NOT NULL,
    -- String message attributes as a JSON object; NULL when there are none (most messages),
    -- which keeps the row and its decoding small.
    attributes     jsonb,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    -- The message can be received once now() reaches it: now() when sent, now() + the
    -- visibility timeout when received. Visible and in flight are the two sides of now(), so
    -- no background job has to make timed-out messages visible again.
    visible_at     timestamptz NOT NULL DEFAULT now(),
    -- How many times it has been received, across its queue and its dead-letter queue. Each
    -- receive increments it, so "<id>.<receive_count>" names one receive: a receipt from an
    -- earlier receive no longer matches and can neither delete nor hide the new delivery.
    receive_count  integer     NOT NULL DEFAULT 0 CHECK (receive_count >= 0)
) WITH (
    -- Every message is inserted, updated at least once (received) and deleted within seconds,
    -- so dead rows pile up at the rate messages flow: vacuum after 1,000 dead rows (or 5% of
    -- the table) rather than the default 20%, with no cost-based pauses, so a 100,000-message
    -- backlog drains through a table and index that stay near their live size.
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

-- Receive reads the oldest visible messages of one queue: `queue = $1 AND visible_at <= now()
-- ORDER BY visible_at, id LIMIT 10 FOR UPDATE SKIP LOCKED` is a range scan of this index that
-- stops after ten unlocked rows, whatever the backlog. In-flight messages sort after every
-- visible one (their visible_at is in the future), so they are never scanned. It also counts
-- visible and in-flight messages for stats without reading the table (index-only scan).
CREATE INDEX queue_messages_visible ON queue_messages (queue, visible_at, id);

-- No NOTIFY trigger: a transaction that notifies holds the cluster-wide notify lock until its
-- commit is flushed, which serialises concurrent senders (see 008_notify_after_commit.sql). The
-- adapter notifies after its INSERT has committed, through adapters/postgres/listen.py.
