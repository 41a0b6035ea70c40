-- Read-your-writes: per API key, the newest event its requests wrote, in commit order
-- (transaction id, position). A read made with the key waits until the views it reads have
-- applied at least that, so a client sees its own writes without passing positions.
--
-- UNLOGGED: written after every command (the send is the hot path), it costs no WAL and no
-- fsync. A crash empties it; reads then stop waiting for writes made before the crash, as if
-- no position had been recorded: the views still catch up, only the guarantee lapses.
-- fillfactor: a key's row is rewritten on every write; room on its page keeps those updates
-- HOT (no index entry per update).
CREATE UNLOGGED TABLE key_writes (
    key_id          text        PRIMARY KEY,
    transaction_id  xid8        NOT NULL,
    position        bigint      NOT NULL
) WITH (fillfactor = 50);
