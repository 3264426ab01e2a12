-- Deployments: releases made from green runs, the environments they go to,
-- each deployment and its decisions, and an audit log of who did what.

-- Who a token stands for, for approvals: four-eyes compares the email with
-- commit authors; groups name who may approve.
ALTER TABLE tokens ADD COLUMN email TEXT;
ALTER TABLE tokens ADD COLUMN groups_json TEXT NOT NULL DEFAULT '[]';

-- Whether a finished run has been looked at for a release (0: not yet), so a
-- server that stopped in between picks it up again.
ALTER TABLE runs ADD COLUMN delivered BIGINT NOT NULL DEFAULT 0;
-- Runs from before deployments existed never make releases.
UPDATE runs SET delivered = 1;

CREATE TABLE releases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    version     TEXT   NOT NULL,
    run_id      BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    commit_sha  TEXT   NOT NULL,
    branch      TEXT   NOT NULL,
    author      TEXT   NOT NULL,
    message     TEXT   NOT NULL,
    images      TEXT   NOT NULL,
    commits     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (project_id, version),
    UNIQUE (run_id)
);

CREATE TABLE environments (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    port        BIGINT,
    current     BIGINT,
    health      TEXT   NOT NULL DEFAULT 'none',
    health_note TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE deployments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment  TEXT   NOT NULL,
    release_id   BIGINT NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    action       TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    requested_by TEXT   NOT NULL,
    reason       TEXT,
    previous_release_id BIGINT,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    started_at   BIGINT,
    finished_at  BIGINT
);
CREATE INDEX deployments_by_environment ON deployments (project_id, environment, id);
CREATE INDEX deployments_by_state ON deployments (state);

CREATE TABLE decisions (
    deployment_id BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    who           TEXT   NOT NULL,
    decision      TEXT   NOT NULL,
    comment       TEXT   NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, who)
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    detail      TEXT   NOT NULL
);
CREATE INDEX audit_by_project ON audit_log (project_id, id);
