//! Bitbucket Cloud's `repo:push` payload: `push.changes[]`, one per ref.

use crate::json::{Node, payload};
use crate::{NO_COMMIT, Push, WebhookError};

/// One push per branch change. A change's `new` is the ref after the push and is
/// `null` when the ref was deleted; `old` is `null` when it was created.
pub(crate) fn push(root: &Node) -> Result<Vec<Push>, WebhookError> {
    root.get("push")
        .get("changes")
        .items()?
        .iter()
        .map(change)
        .filter_map(Result::transpose)
        .collect()
}

/// The push of one change; none for tags (`tag`, `annotated_tag`) and bookmarks.
fn change(change: &Node) -> Result<Option<Push>, WebhookError> {
    let new = change.get("new");
    let deleted = new.is_null();
    let state = if deleted { change.get("old") } else { new };
    if state.is_null() {
        return Err(payload(format!(
            "{} has neither new nor old",
            change.path()
        )));
    }
    if state.get("type").str()? != "branch" {
        return Ok(None);
    }
    let name = state.get("name");
    let branch = name.branch(name.str()?)?;
    let commit = if deleted {
        NO_COMMIT.to_owned()
    } else {
        state.get("target").get("hash").commit()?
    };
    let old = change.get("old");
    let before = if deleted || old.is_null() {
        None
    } else {
        old.get("target").get("hash").opt_commit()
    };
    Ok(Some(Push::new(branch, commit, deleted).moved_from(before)))
}
