-- Reply suggestions (projections/suggestions.py): the account's past one-to-one replies that got
-- an outcome, each with the fan message it answered, searched by PostgreSQL full-text search.
-- Written only by the suggestions projector; rebuildable from the log.
--
-- Personal data: ``context`` is a fan's own words, ``template`` what was written to that fan
-- (with the fan's name made a placeholder), ``name``/``handle`` the fan's. All three tables
-- hold plain values for live fans only: a fan's erasure deletes every row of that fan.

-- One row per one-to-one outgoing message that answered a fan message; ``outcome`` is null
-- while it waits (for a fan reply before the account's next message, or a purchase).
CREATE TABLE suggestion_replies (
    tenant_id           text        NOT NULL,
    message_id          uuid        NOT NULL,
    conversation_id     bigint      NOT NULL,
    fan_id              bigint      NOT NULL,
    context_message_id  uuid        NOT NULL,
    context             text        NOT NULL,
    -- 'simple': no stemming and no stop words, so any language's words match as written
    -- (fans write in many languages, often mixed, with slang a dictionary does not know).
    context_tsv         tsvector    GENERATED ALWAYS AS (to_tsvector('simple', context)) STORED,
    template            text        NOT NULL,
    priced              boolean     NOT NULL,
    outcome             text        CHECK (outcome IN ('replied', 'purchased')),
    queued_at           timestamptz NOT NULL,
    PRIMARY KEY (message_id, tenant_id)
);
CREATE INDEX suggestion_replies_context ON suggestion_replies USING gin (context_tsv);
CREATE INDEX suggestion_replies_tenant ON suggestion_replies (tenant_id, outcome);
CREATE INDEX suggestion_replies_fan ON suggestion_replies (fan_id);

-- Per conversation: the fan's last message (the context of the next reply) and the account's
-- reply waiting for the fan's answer.
CREATE TABLE suggestion_threads (
    conversation_id     bigint      PRIMARY KEY,
    tenant_id           text        NOT NULL,
    fan_id              bigint      NOT NULL,
    last_in_message_id  uuid,
    last_in_content     text,
    pending_message_id  uuid
);
CREATE INDEX suggestion_threads_fan ON suggestion_threads (fan_id);

-- Each fan's name and handle, to turn them into placeholders in what was written to them.
CREATE TABLE suggestion_fans (
    fan_id     bigint PRIMARY KEY,
    tenant_id  text   NOT NULL,
    name       text,
    handle     text
);
