-- Projects, runs and jobs as persisted state machines, every transition kept.
-- Times are milliseconds since the Unix epoch (portable across backends).

CREATE TABLE projects (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    git_url       TEXT    NOT NULL,
    branches      TEXT    NOT NULL DEFAULT '[]',
    poll_seconds  BIGINT,
    next_run      BIGINT  NOT NULL DEFAULT 1,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    number       BIGINT  NOT NULL,
    commit_sha   TEXT    NOT NULL,
    branch       TEXT    NOT NULL DEFAULT '',
    state        TEXT    NOT NULL DEFAULT 'queued',
    reason       TEXT,
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    UNIQUE (project_id, number)
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'queued',
    labels       TEXT    NOT NULL DEFAULT '[]',
    attempt      BIGINT  NOT NULL DEFAULT 0,
    worker       TEXT,
    lease_until  BIGINT,
    exit_code    BIGINT,
    reason       TEXT,
    queued_at    BIGINT  NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT,
    UNIQUE (run_id, name)
);
CREATE INDEX jobs_queued ON jobs (state, id);

CREATE TABLE transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    entity      TEXT    NOT NULL,
    entity_id   BIGINT  NOT NULL,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    reason      TEXT,
    at          BIGINT  NOT NULL
);
CREATE INDEX transitions_entity ON transitions (entity, entity_id);

CREATE TABLE log_chunks (
    job_id      BIGINT  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    first_line  BIGINT  NOT NULL,
    lines       BIGINT  NOT NULL,
    text        TEXT    NOT NULL,
    PRIMARY KEY (job_id, seq)
);
