-- Secrets have a scope (issue 12): which jobs may receive a secret ('any'
-- branch, 'protected' branches only, or 'none': deployments only) and which
-- environments (a JSON list of names; NULL: every environment). Secrets set
-- before keep what they had: every branch, every environment. New secrets
-- get the safe default from the API (protected branches).
ALTER TABLE secrets ADD COLUMN jobs TEXT NOT NULL DEFAULT 'any';
ALTER TABLE secrets ADD COLUMN environments TEXT;
-- The webhook secret is the server's alone: no job and no deployment gets it.
UPDATE secrets SET jobs = 'none', environments = '[]' WHERE name = '.webhook';
