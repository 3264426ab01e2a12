//! Revisions new code is measured from: where a work tree's HEAD left a
//! branch (`slipway gate --base`), and a commit's first parent (a run that
//! has no green run to compare with).

use crate::{GitError, Mirror, WorkTree, git};

impl WorkTree {
    /// The full id of the commit `rev` names; an error when it names none.
    pub async fn resolve(&self, rev: &str) -> Result<String, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let args = ["rev-parse", "--verify", "--end-of-options", &spec];
        Ok(git(&self.dir, args).await?.trim().to_string())
    }

    /// `git merge-base REV HEAD`: the commit HEAD's history forked from `rev`,
    /// so lines `rev` changed after the fork are not counted as HEAD's.
    pub async fn merge_base_with_head(&self, rev: &str) -> Result<String, GitError> {
        let args = ["merge-base", "--end-of-options", rev, "HEAD"];
        Ok(git(&self.dir, args).await?.trim().to_string())
    }
}

impl Mirror {
    /// The paths of the files `commit` holds (`git ls-tree -r`): read from
    /// the repository, never from a work tree a job may have changed.
    pub async fn files_at(&self, commit: &str) -> Result<Vec<String>, GitError> {
        let args = [
            "ls-tree",
            "-r",
            "-z",
            "--name-only",
            "--end-of-options",
            commit,
        ];
        let out = git(&self.path, args).await?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// `commit`'s first parent; `None` for a root commit (it has none).
    pub async fn first_parent(&self, commit: &str) -> Result<Option<String>, GitError> {
        let args = [
            "rev-list",
            "--parents",
            "-n",
            "1",
            "--end-of-options",
            commit,
        ];
        let out = git(&self.path, args).await?;
        Ok(out.split_whitespace().nth(1).map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(dir: &std::path::Path, args: &[&str]) -> String {
        git(dir, args.iter().copied()).await.expect("git")
    }

    #[tokio::test]
    async fn merge_base_and_first_parent() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        run(dir, &["init", "-q", "-b", "main"]).await;
        let commit = |name: &'static str| async move {
            std::fs::write(dir.join(name), name).expect("write");
            run(dir, &["add", name]).await;
            run(
                dir,
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@e",
                    "commit",
                    "-qm",
                    name,
                ],
            )
            .await;
            run(dir, &["rev-parse", "HEAD"]).await.trim().to_string()
        };
        let root = commit("a").await;
        let fork = commit("b").await;
        run(dir, &["checkout", "-qb", "feature"]).await;
        let tip = commit("c").await;
        run(dir, &["checkout", "-q", "main"]).await;
        commit("d").await;
        run(dir, &["checkout", "-q", "feature"]).await;
        let tree = WorkTree::discover(dir).await.expect("git").expect("tree");
        assert_eq!(tree.merge_base_with_head("main").await.expect("base"), fork);
        assert_eq!(tree.resolve("HEAD").await.expect("head"), tip);
        assert!(tree.resolve("no-such-rev").await.is_err());
        let mirror = Mirror::at(&dir.join(".git"));
        assert_eq!(mirror.first_parent(&tip).await.expect("parent"), Some(fork));
        assert_eq!(mirror.first_parent(&root).await.expect("root"), None);
        assert_eq!(mirror.files_at(&tip).await.expect("files"), ["a", "b", "c"]);
    }
}
