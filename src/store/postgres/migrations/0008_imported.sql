-- What an import from a compacted journal brings besides the log itself.
-- A deleted pour whose idempotency key is still remembered, kept so that the key's
-- retries answer as they would have: never replayed as a pour.
ALTER TABLE altair_pours ADD COLUMN kept_for_key boolean NOT NULL DEFAULT false;
-- What the journal kept of the records it dropped (each tap's latest pour time, what the
-- kegs announced, the alerts, the highest id), one export line each, applied at its
-- place when the log is replayed: after pour after_pour_id and the deletions and keg
-- operations numbered up to the counts given.
CREATE TABLE altair_restored (
    seq bigint PRIMARY KEY,
    after_pour_id bigint NOT NULL,
    deletions bigint NOT NULL,
    keg_ops bigint NOT NULL,
    line text NOT NULL
);
