-- Who caused a run, so that person does not approve the deployments of what
-- it ships: the person (a user's name) whose token or session triggered or
-- re-ran it, or whose email the push webhook reported; and the pusher as the
-- forge reported them (JSON: forge, login, name, email), best effort.
-- Runs from before are caused by nobody known.
ALTER TABLE runs ADD COLUMN started_by TEXT;
ALTER TABLE runs ADD COLUMN pushed_by TEXT;
