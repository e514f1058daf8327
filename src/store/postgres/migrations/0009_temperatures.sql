-- The taps' temperature readings: every reading for a day, then one mean a minute
-- (samples: how many readings a row stands for).
CREATE TABLE altair_temperatures (
    venue text NOT NULL,
    tap_id integer NOT NULL,
    sensor text NOT NULL,
    location text NOT NULL,
    at bigint NOT NULL,
    celsius double precision NOT NULL,
    samples integer NOT NULL DEFAULT 1
);
CREATE INDEX altair_temperatures_series ON altair_temperatures (venue, tap_id, sensor, at);
CREATE INDEX altair_temperatures_at ON altair_temperatures (at);
