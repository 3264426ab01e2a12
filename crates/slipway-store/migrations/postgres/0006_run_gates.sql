-- Quality gate outcomes, one per job with reports: the status and the whole
-- report (conditions, measures, uncovered new lines) as JSON.
CREATE TABLE run_gates (
    run_id      BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job         TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    report      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (run_id, job)
);
