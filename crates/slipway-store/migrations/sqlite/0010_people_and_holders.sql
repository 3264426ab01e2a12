-- Tokens belong to people. An approval, a four-eyes check and "who asked"
-- are about the person (a user), whatever token they use: two tokens of one
-- person are one approver. Tokens of machines (agents, CI bots) belong to
-- nobody and cannot approve.
ALTER TABLE tokens ADD COLUMN user_name TEXT REFERENCES users (name) ON DELETE CASCADE;

-- Existing tokens with an email belong to the user with that email; where
-- there is none, one is made per email (named by it, with no password, so it
-- cannot log in until an admin sets one with `slipway user add --replace`).
INSERT INTO users (name, password_hash, role, email, groups_json, created_at)
SELECT lower(t.email), '!', 'viewer', lower(t.email), '[]', MIN(t.created_at)
FROM tokens t
WHERE t.email IS NOT NULL AND t.email <> ''
  AND NOT EXISTS (
      SELECT 1 FROM users u WHERE lower(u.email) = lower(t.email) OR u.name = lower(t.email)
  )
GROUP BY lower(t.email);

UPDATE tokens SET user_name = (
    SELECT u.name FROM users u
    WHERE lower(u.email) = lower(tokens.email)
    ORDER BY u.created_at, u.name
    LIMIT 1
)
WHERE email IS NOT NULL AND email <> '';

-- The hash of the agent token whose claim holds a running job: logs,
-- artifacts, caches and results are taken only from it.
ALTER TABLE jobs ADD COLUMN holder TEXT;
