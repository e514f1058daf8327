-- Pours, deletions, idempotency keys, and the counts that make list totals cost O(1).
--
-- The event log every server follows is the pours themselves, in id order, with the
-- deletions between them: a deletion comes after the pour that was the last one when it
-- committed. No table of events: a pour is written once.

-- One row. Every writing transaction locks it first and takes pour ids and deletion
-- numbers from it, holding it to its commit, so that both follow commit order across
-- servers.
CREATE TABLE altair_counters (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_pour_id bigint NOT NULL,
    last_deletion bigint NOT NULL
);
INSERT INTO altair_counters (last_pour_id, last_deletion) VALUES (0, 0);

-- A deleted pour keeps its row (the log and idempotency keys refer to it).
CREATE TABLE altair_pours (
    id bigint PRIMARY KEY,
    tap_id bigint NOT NULL,
    volume double precision NOT NULL,
    glass text NOT NULL,
    poured_at_ms bigint NOT NULL,
    device_time boolean NOT NULL,
    deleted boolean NOT NULL DEFAULT false
);
CREATE INDEX altair_pours_by_tap ON altair_pours (tap_id, id) WHERE NOT deleted;
CREATE INDEX altair_pours_by_glass ON altair_pours (glass, id) WHERE NOT deleted;

CREATE TABLE altair_deletions (
    seq bigint PRIMARY KEY,
    -- The last pour id when it committed: it comes after that pour, before the next.
    after_pour_id bigint NOT NULL,
    pour_id bigint NOT NULL REFERENCES altair_pours (id)
);

CREATE TABLE altair_keys (
    key text PRIMARY KEY,
    pour_id bigint NOT NULL REFERENCES altair_pours (id),
    created_ms bigint NOT NULL
);
CREATE INDEX altair_keys_by_age ON altair_keys (created_ms);

-- Live pours per tap and glass.
CREATE TABLE altair_counts (
    tap_id bigint NOT NULL,
    glass text NOT NULL,
    pours bigint NOT NULL,
    PRIMARY KEY (tap_id, glass)
);
