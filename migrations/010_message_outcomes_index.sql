-- The latest sent or failed message, for the queue status: without this index the query
-- read every message event since the last outcome (thousands of rows per call).
CREATE INDEX events_message_outcomes ON events (transaction_id DESC, position DESC)
    WHERE event_type IN ('MessageSent', 'MessageFailed');
