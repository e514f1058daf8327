-- The venue (bar) of each pour. NULL is the default venue, whichever --default-venue
-- names: every pour stored before venues existed, and every pour of that venue since.
ALTER TABLE altair_pours ADD COLUMN venue text;
