-- Keg operations (tap, correct, finish, quiet) in the log, between the pours like
-- deletions: each after the pour that was the last when it committed. Kegs, levels and keg
-- events are derived from the log by every server alike; nothing else is stored for them.
CREATE TABLE altair_keg_ops (
    seq bigint PRIMARY KEY,
    after_pour_id bigint NOT NULL,
    op text NOT NULL,
    -- The keg it made or changed, and the idempotency key it came with (cleared when the
    -- key expires), for retries.
    keg_id bigint NOT NULL,
    key text UNIQUE,
    key_created_ms bigint
);
ALTER TABLE altair_counters ADD COLUMN last_keg_op bigint NOT NULL DEFAULT 0;
