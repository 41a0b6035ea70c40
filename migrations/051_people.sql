-- Issue 20, item 5: fans of one account linked as one person across platforms
-- (domain/person.py). Person ids come from their own sequence, as fans' and campaigns' do.
CREATE SEQUENCE person_id_seq;

-- Read model: one row per person. Written only by the people projector.
CREATE TABLE people (
    person_id   bigint      PRIMARY KEY,
    tenant_id   text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     integer     NOT NULL
);
CREATE INDEX people_tenant_newest ON people (tenant_id, person_id DESC);

-- Which fans each person holds: ids only (no personal data), one person per fan (the fan's
-- stream decides that; the key here only mirrors it). Names, handles and values are read
-- from the fans read model, which holds live fans only: an erased or deleted fan drops out
-- of every person's view with it. Written only by the people projector.
CREATE TABLE person_fans (
    fan_id     bigint      PRIMARY KEY,
    person_id  bigint      NOT NULL,
    tenant_id  text        NOT NULL,
    linked_at  timestamptz NOT NULL
);
CREATE INDEX person_fans_person ON person_fans (person_id, linked_at, fan_id);

