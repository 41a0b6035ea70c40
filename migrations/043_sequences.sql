-- Sequences (domain/sequence.py): ids from their own sequence, as campaigns and scripts.
CREATE SEQUENCE sequence_id_seq;

-- Read model, written only by the sequences projector: one row per sequence.
CREATE TABLE sequences (
    sequence_id  bigint      PRIMARY KEY,
    tenant_id    text        NOT NULL,
    name         text        NOT NULL,
    status       text        NOT NULL,
    trigger      jsonb       NOT NULL,
    steps        jsonb       NOT NULL,
    exit_rules   jsonb       NOT NULL,
    reentry      text        NOT NULL,
    time_zone    text        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      integer     NOT NULL,
    entered      integer     NOT NULL DEFAULT 0,  -- enrolments, re-entries included
    completed    integer     NOT NULL DEFAULT 0
);

CREATE INDEX sequences_tenant_newest ON sequences (tenant_id, sequence_id DESC);
-- The automation worker asks, per event, which live sequences of an account a trigger starts.
CREATE INDEX sequences_by_trigger ON sequences (tenant_id, (trigger->>'type'))
    WHERE status = 'active';

-- Per step: runs that came to wait for it (entered), its messages queued (sent), replies and
-- purchases that followed it, and runs that ended while waiting for it, counted per reason.
CREATE TABLE sequence_step_metrics (
    sequence_id    bigint  NOT NULL,
    step           integer NOT NULL,
    entered        integer NOT NULL DEFAULT 0,
    sent           integer NOT NULL DEFAULT 0,
    replied        integer NOT NULL DEFAULT 0,
    purchased      integer NOT NULL DEFAULT 0,
    revenue_cents  bigint  NOT NULL DEFAULT 0,
    exited         jsonb   NOT NULL DEFAULT '{}',
    PRIMARY KEY (sequence_id, step)
);

-- The runs under way, with when their next step falls due: the durable timers. A worker
-- claims due rows with FOR UPDATE SKIP LOCKED and decides on the enrolment's stream; a row
-- leaves when its run completes or exits.
CREATE TABLE sequence_enrolments (
    stream_id       text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    sequence_id     bigint      NOT NULL,
    fan_id          bigint      NOT NULL,
    next_step       integer     NOT NULL,
    due_at          timestamptz,
    last_sent_step  integer,
    replied_step    integer,  -- the last step a reply was counted for (one per step)
    version         integer     NOT NULL
);

CREATE INDEX sequence_enrolments_due ON sequence_enrolments (due_at);
CREATE INDEX sequence_enrolments_fan ON sequence_enrolments (tenant_id, fan_id);

-- Each message a step queued, so that a purchase of it is counted on its step.
CREATE TABLE sequence_messages (
    message_id   uuid    NOT NULL,
    tenant_id    text    NOT NULL,
    sequence_id  bigint  NOT NULL,
    step         integer NOT NULL,
    PRIMARY KEY (message_id, tenant_id)
);
