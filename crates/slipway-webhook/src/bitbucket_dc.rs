//! Bitbucket Data Center's `repo:refs_changed` payload: `changes[]`, one per ref.

use crate::json::{Node, is_zero};
use crate::{Push, WebhookError};

/// One push per branch change.
pub(crate) fn refs_changed(root: &Node) -> Result<Vec<Push>, WebhookError> {
    root.get("changes")
        .items()?
        .iter()
        .map(change)
        .filter_map(Result::transpose)
        .collect()
}

/// The push of one change: `ref.id` is the full ref name, `toHash` the new commit
/// (forty zeros when `type` is `DELETE`). Tags (`ref.type` `TAG`) give none.
fn change(change: &Node) -> Result<Option<Push>, WebhookError> {
    let reference = change.get("ref");
    if reference
        .get("type")
        .opt_str()?
        .is_some_and(|t| t != "BRANCH")
    {
        return Ok(None);
    }
    let Some(branch) = reference.get("id").head_branch()? else {
        return Ok(None);
    };
    let commit = change.get("toHash").commit()?;
    let deleted = change.get("type").str()? == "DELETE" || is_zero(&commit);
    let before = change.get("fromHash").opt_commit();
    Ok(Some(Push::new(branch, commit, deleted).moved_from(before)))
}
