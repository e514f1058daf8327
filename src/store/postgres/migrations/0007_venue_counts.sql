-- Live pours per venue, tap and glass, so that a venue's list total is a sum of a few rows
-- rather than a scan of its pours. '' is the default venue (as NULL is in altair_pours):
-- every count kept before venues existed is its.
ALTER TABLE altair_counts ADD COLUMN venue text NOT NULL DEFAULT '';
ALTER TABLE altair_counts DROP CONSTRAINT altair_counts_pkey;
ALTER TABLE altair_counts ADD PRIMARY KEY (venue, tap_id, glass);
