-- The artifact repository. Blob content lives on disk by digest and is shared
-- by every repository; these tables say which repository may serve which blob,
-- what manifests and tags exist, and what keeps a blob alive for the garbage
-- collector.

CREATE TABLE repositories (
    name            TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL,             -- oci | oci-proxy | raw
    policy          TEXT    NOT NULL DEFAULT 'ci', -- ci (tags move) | release (tags immutable)
    keep_tags       BIGINT,                       -- retention: newest N tags per image
    anonymous_pull  BIGINT  NOT NULL DEFAULT 0,
    upstream        TEXT,                         -- oci-proxy: the registry it caches
    ttl_seconds     BIGINT,                       -- oci-proxy: how long a tag is trusted
    created_at      BIGINT  NOT NULL
);

-- Every stored blob (manifests are stored as blobs too). `touched_at` is the
-- last time something uploaded, mounted, checked or referenced it: the garbage
-- collector spares anything touched inside its grace window.
CREATE TABLE blobs (
    digest      TEXT    PRIMARY KEY,
    size        BIGINT  NOT NULL,
    touched_at  BIGINT  NOT NULL
);

-- Which repository/image may serve a blob (uploaded, mounted or promoted there).
CREATE TABLE blob_links (
    repo    TEXT  NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    image   TEXT  NOT NULL,
    digest  TEXT  NOT NULL REFERENCES blobs (digest) ON DELETE CASCADE,
    PRIMARY KEY (repo, image, digest)
);

CREATE TABLE manifests (
    repo           TEXT    NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    image          TEXT    NOT NULL,
    digest         TEXT    NOT NULL REFERENCES blobs (digest),
    media_type     TEXT    NOT NULL,
    size           BIGINT  NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    annotations    TEXT,
    pushed_at      BIGINT  NOT NULL,
    PRIMARY KEY (repo, image, digest)
);
CREATE INDEX manifests_by_digest ON manifests (digest);
CREATE INDEX manifests_by_subject ON manifests (repo, image, subject);

-- What a manifest (by digest, wherever it is) references: config, layers,
-- index children. Read by promotion and by the garbage collector.
CREATE TABLE manifest_refs (
    manifest  TEXT  NOT NULL,
    target    TEXT  NOT NULL,
    PRIMARY KEY (manifest, target)
);
CREATE INDEX manifest_refs_by_target ON manifest_refs (target);

CREATE TABLE tags (
    repo        TEXT    NOT NULL,
    image       TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (repo, image, tag),
    FOREIGN KEY (repo, image, digest) REFERENCES manifests (repo, image, digest) ON DELETE CASCADE
);

-- Blob uploads in progress (their bytes are in the blob store's upload area).
CREATE TABLE uploads (
    id          TEXT    PRIMARY KEY,
    repo        TEXT    NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    image       TEXT    NOT NULL,
    started_at  BIGINT  NOT NULL
);

-- Who moved which image where, and why.
CREATE TABLE promotions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    image       TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    from_repo   TEXT    NOT NULL,
    to_repo     TEXT    NOT NULL,
    tag         TEXT,
    reason      TEXT,
    promoted_by TEXT    NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX promotions_by_image ON promotions (image, digest);

-- Files of raw repositories.
CREATE TABLE raw_files (
    repo        TEXT    NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    path        TEXT    NOT NULL,
    digest      TEXT    NOT NULL REFERENCES blobs (digest),
    size        BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (repo, path)
);
CREATE INDEX raw_files_by_digest ON raw_files (digest);
