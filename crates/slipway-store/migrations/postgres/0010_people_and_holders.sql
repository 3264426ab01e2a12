-- Tokens belong to people. An approval, a four-eyes check and "who asked"
-- are about the person (a user), whatever token they use: two tokens of one
-- person are one approver. Tokens of machines (agents, CI bots) belong to
-- nobody and cannot approve.
ALTER TABLE tokens ADD COLUMN user_name TEXT REFERENCES users (name) ON DELETE CASCADE;

-- Existing tokens with an email belong to the user with that email; where
-- there is none, one person is made per email (with no password, so they
-- cannot log in until an admin sets one with `slipway user add NAME --replace`),
-- named by the email, or when a user has that name already (with another
-- email: another person), by the email and the first token's time.
INSERT INTO users (name, password_hash, role, email, groups_json, created_at)
SELECT CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.name = e.email)
            THEN e.email || '-' || CAST(e.first AS TEXT)
            ELSE e.email END,
       '!', 'viewer', e.email, '[]', e.first
FROM (
    SELECT lower(email) AS email, MIN(created_at) AS first
    FROM tokens
    WHERE email IS NOT NULL AND email <> ''
    GROUP BY lower(email)
) e
WHERE NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = e.email)
ON CONFLICT (name) DO NOTHING;

UPDATE tokens SET user_name = (
    SELECT u.name FROM users u
    WHERE lower(u.email) = lower(tokens.email)
    ORDER BY u.created_at, u.name
    LIMIT 1
)
WHERE email IS NOT NULL AND email <> '';

-- Decisions and deployment requests made before name the token; from now
-- on they name its person. A token name that is a user's name, or whose
-- tokens belong to several people, is left as it was (it says nobody surely).
CREATE TEMPORARY TABLE token_people AS
SELECT name AS token, MIN(user_name) AS person
FROM tokens
WHERE user_name IS NOT NULL AND name NOT IN (SELECT name FROM users)
GROUP BY name
HAVING COUNT(DISTINCT user_name) = 1;

-- One person's two tokens that both decided on a deployment count once:
-- the earliest decision stays.
DELETE FROM decisions
WHERE EXISTS (
    SELECT 1 FROM decisions d
    WHERE d.deployment_id = decisions.deployment_id
      AND (d.at < decisions.at OR (d.at = decisions.at AND d.who < decisions.who))
      AND COALESCE((SELECT p.person FROM token_people p WHERE p.token = d.who), d.who)
        = COALESCE((SELECT p.person FROM token_people p WHERE p.token = decisions.who), decisions.who)
);

UPDATE decisions SET who = (SELECT p.person FROM token_people p WHERE p.token = decisions.who)
WHERE who IN (SELECT token FROM token_people);

UPDATE deployments SET requested_by = (SELECT p.person FROM token_people p WHERE p.token = deployments.requested_by)
WHERE requested_by IN (SELECT token FROM token_people);

DROP TABLE token_people;

-- The hash of the agent token whose claim holds a running job: logs,
-- artifacts, caches and results are taken only from it.
ALTER TABLE jobs ADD COLUMN holder TEXT;
