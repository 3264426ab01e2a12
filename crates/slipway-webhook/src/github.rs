//! GitHub's push payload, which Gitea and Forgejo copy, and Gitea's delete payload.

use crate::json::{Node, is_zero};
use crate::{NO_COMMIT, Push, WebhookError};

/// A `push` event: `ref`, `before`, `after`, `deleted`.
///
/// Tags and other refs give no push. Neither does a push whose `before` equals its
/// `after`: no forge sends one for a real push, but Gitea's "Test delivery" does
/// (with forty zeros on an empty repository).
pub(crate) fn push(root: &Node) -> Result<Vec<Push>, WebhookError> {
    let Some(branch) = root.get("ref").head_branch()? else {
        return Ok(Vec::new());
    };
    let after = root.get("after").commit()?;
    let before = root.get("before");
    if before.commit().is_ok_and(|b| b == after) {
        return Ok(Vec::new());
    }
    let deleted = root.get("deleted").flag()? || is_zero(&after);
    Ok(vec![
        Push::new(branch, after, deleted).moved_from(before.opt_commit()),
    ])
}

/// Gitea's `delete` event: Gitea reports a deleted branch with it, not with a push.
/// Its `ref` is the short name; `ref_type` is `branch` or `tag`.
pub(crate) fn gitea_delete(root: &Node) -> Result<Vec<Push>, WebhookError> {
    if root.get("ref_type").str()? != "branch" {
        return Ok(Vec::new());
    }
    let field = root.get("ref");
    let name = field.str()?;
    let branch = field.branch(name.strip_prefix("refs/heads/").unwrap_or(name))?;
    Ok(vec![Push::new(branch, NO_COMMIT.to_owned(), true)])
}
