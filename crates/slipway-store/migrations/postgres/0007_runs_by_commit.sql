-- Gates look up the runs of a commit (the reference's issue fingerprints).
CREATE INDEX runs_by_commit ON runs (project_id, commit_sha);
