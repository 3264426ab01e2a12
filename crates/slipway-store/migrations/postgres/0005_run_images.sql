-- Images a run pushed to the registry: the reference and the digest, per job.
CREATE TABLE run_images (
    run_id     BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    job        TEXT    NOT NULL,
    reference  TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    pushed_at  BIGINT  NOT NULL,
    PRIMARY KEY (run_id, reference)
);
CREATE INDEX run_images_by_digest ON run_images (digest);
