-- Concurrency limits: at most this many jobs of a project run at once (NULL: no limit).
ALTER TABLE projects ADD COLUMN max_running BIGINT;
