-- Each tap's latest pour time is kept by every server in memory, derived from the log
-- as it publishes it; a server that still wrote this table would decide bursts against
-- a stale copy, so it goes, and such a server's writes fail rather than decide wrongly.
DROP TABLE altair_taps;
