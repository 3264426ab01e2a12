-- Where time goes: when each log line was written and when each step ran.
--
-- A chunk's line times are compact text: the first line's time (milliseconds
-- since the Unix epoch), then each further line's milliseconds after the one
-- before it, comma-separated. Chunks stored before this have none (NULL):
-- their lines still show, without a time.
ALTER TABLE log_chunks ADD COLUMN times TEXT;

-- Each step of each try at a job: when it started and, once it ended, when
-- and with what exit code. A try's steps are kept apart from an earlier
-- try's (a job that lost its worker runs again from its first step).
CREATE TABLE job_steps (
    job_id       BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt      BIGINT  NOT NULL,
    step         BIGINT  NOT NULL,
    title        TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    exit_code    BIGINT,
    PRIMARY KEY (job_id, attempt, step)
);
