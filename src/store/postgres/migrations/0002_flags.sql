-- Flags on pours, and the latest time each tap reported a pour at (deleted or not), which
-- the burst flag compares each new pour with. Pours stored before have no flags.
ALTER TABLE altair_pours ADD COLUMN flags smallint NOT NULL DEFAULT 0;
-- Flagged pours are few: a list filtered by a flag reads only them.
CREATE INDEX altair_pours_flagged ON altair_pours (id) WHERE flags <> 0 AND NOT deleted;

CREATE TABLE altair_taps (
    tap_id bigint PRIMARY KEY,
    latest_pour_ms bigint NOT NULL
);
INSERT INTO altair_taps (tap_id, latest_pour_ms)
    SELECT tap_id, max(poured_at_ms) FROM altair_pours GROUP BY tap_id;
