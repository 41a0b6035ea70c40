-- Issue 19: A/B tests of sequence steps (domain/sequence_rules.py, Step.variants). Written
-- only by the sequences projector: which variant each run was last sent (its reply counts
-- for that variant), each step message's variant (its purchase counts for it), and the
-- counts per step and variant.
ALTER TABLE sequence_enrolments ADD COLUMN last_sent_variant integer;
ALTER TABLE sequence_messages ADD COLUMN variant integer;

CREATE TABLE sequence_step_variants (
    sequence_id    bigint  NOT NULL,
    step           integer NOT NULL,
    variant        integer NOT NULL,
    sent           integer NOT NULL DEFAULT 0,
    replied        integer NOT NULL DEFAULT 0,
    purchased      integer NOT NULL DEFAULT 0,
    revenue_cents  bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (sequence_id, step, variant)
);
