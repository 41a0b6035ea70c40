-- Reply suggestions search the account's latest replies that worked (a bounded window, see
-- adapters/postgres/suggestions_read_model.py), not all of them: this index hands them out
-- newest first, so a request reads the window's rows and no more, whatever the fan count.
CREATE INDEX suggestion_replies_recent
    ON suggestion_replies (tenant_id, queued_at DESC)
    WHERE outcome IS NOT NULL;
