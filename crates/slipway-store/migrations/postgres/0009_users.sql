-- People who use the web UI: a password (argon2 hash), a role like a token's,
-- and who they are at decision points. Sessions are stored by the hash of
-- their cookie, with the CSRF token their forms must carry.
CREATE TABLE users (
    name          TEXT   PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL,
    email         TEXT,
    groups_json   TEXT   NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT   PRIMARY KEY,
    user_name   TEXT   NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf        TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
