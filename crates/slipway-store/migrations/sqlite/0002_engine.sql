-- What the engine needs: the pipeline a run was created from, job dependencies,
-- webhook de-duplication, polled branch heads, sealed secrets and API tokens.

ALTER TABLE runs ADD COLUMN pipeline TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE jobs ADD COLUMN needs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN allow_failure BIGINT NOT NULL DEFAULT 0;

CREATE TABLE webhook_deliveries (
    project_id   BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    delivery_id  TEXT   NOT NULL,
    run_ids      TEXT   NOT NULL DEFAULT '[]',
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, delivery_id)
);

CREATE TABLE branch_heads (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    branch      TEXT   NOT NULL,
    commit_sha  TEXT   NOT NULL,
    PRIMARY KEY (project_id, branch)
);

CREATE TABLE secrets (
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT   NOT NULL,
    sealed      BLOB   NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE tokens (
    hash        TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
