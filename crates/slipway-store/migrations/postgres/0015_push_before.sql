-- The commit a pushed branch pointed at before the push (the forge's
-- `before`), when the push said: a run with no green run to compare with
-- measures the change the push brought (before..after) as its new code,
-- not every line. Runs from before, and runs not from a push, have none.
ALTER TABLE runs ADD COLUMN push_before TEXT;
