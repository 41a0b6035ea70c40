-- Issue 16: what agencies look at, per member and per creator account (projections/
-- analytics_members.py owns these tables; `crm projections rebuild` fills them from the log).
-- Days are UTC. member_id '' stands for no member: a key of the first release or a process.

-- Per account, member and day: what the member did and what it earned.
CREATE TABLE analytics_member_daily (
    tenant_id              text    NOT NULL,
    member_id              text    NOT NULL,
    day                    date    NOT NULL,
    messages_sent          integer NOT NULL DEFAULT 0,
    ppv_sent               integer NOT NULL DEFAULT 0,
    ppv_bought             integer NOT NULL DEFAULT 0,
    revenue_cents          bigint  NOT NULL DEFAULT 0,
    -- Fans' messages drawn by the member's: the member who wrote last in the conversation.
    replies                integer NOT NULL DEFAULT 0,
    conversations_handled  integer NOT NULL DEFAULT 0,
    answers                integer NOT NULL DEFAULT 0,
    -- The bucket of the day's median answer time (analytics_member_answer_times), kept here
    -- so that a query reads no histogram for it; NULL: no answer that day.
    median_answer_bucket   smallint,
    PRIMARY KEY (tenant_id, day, member_id)
);
CREATE INDEX analytics_member_daily_member ON analytics_member_daily (tenant_id, member_id, day);

-- Which conversations a member wrote in each day, to count each once.
CREATE TABLE analytics_member_conversations (
    tenant_id        text   NOT NULL,
    member_id        text   NOT NULL,
    day              date   NOT NULL,
    conversation_id  bigint NOT NULL,
    PRIMARY KEY (tenant_id, day, member_id, conversation_id)
);

-- Times to answer a fan, as a histogram per account, member and day: bucket b holds answers
-- that took from 2^(b/4) to 2^((b+1)/4) seconds (bucket 0: under 2^(1/4) s). The projection
-- keeps each day's median on its daily row from it; queries never read it.
CREATE TABLE analytics_member_answer_times (
    tenant_id  text     NOT NULL,
    member_id  text     NOT NULL,
    day        date     NOT NULL,
    bucket     smallint NOT NULL,
    answers    integer  NOT NULL,
    PRIMARY KEY (tenant_id, day, member_id, bucket)
);


-- Per conversation: who wrote last (whom a fan's reply is credited to) and since when a fan
-- has been waiting for an answer (NULL: nobody is).
CREATE TABLE analytics_member_conversation_state (
    tenant_id          text        NOT NULL,
    conversation_id    bigint      NOT NULL,
    last_sender        text,
    unanswered_since   timestamptz,
    PRIMARY KEY (tenant_id, conversation_id)
);

-- Each message a fan sent, and when and by whom it was answered: the unanswered messages of
-- a shift are read here.
CREATE TABLE analytics_member_inbound (
    tenant_id        text        NOT NULL,
    message_id       uuid        NOT NULL,
    conversation_id  bigint      NOT NULL,
    fan_id           bigint      NOT NULL,
    received_at      timestamptz NOT NULL,
    answered_at      timestamptz,
    answered_by      text,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX analytics_member_inbound_received ON analytics_member_inbound (tenant_id, received_at);
CREATE INDEX analytics_member_inbound_waiting ON analytics_member_inbound (tenant_id, conversation_id)
    WHERE answered_at IS NULL;
