//! Reading a JSON payload field by field, each error naming the field's path.

use serde_json::Value;

use crate::WebhookError;
use crate::headers::Headers;

/// Parse a verified body as JSON.
pub(crate) fn parse(headers: &Headers, body: &[u8]) -> Result<Value, WebhookError> {
    let form = headers
        .first(&["Content-Type"])
        .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Err(payload(
            "the body is form-encoded: set the webhook's content type to application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| payload(format!("the body is not JSON: {e}")))
}

pub(crate) fn payload(message: impl Into<String>) -> WebhookError {
    WebhookError::Payload(message.into())
}

/// A place in the payload, which may hold nothing, and the path that leads there.
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    value: Option<&'a Value>,
    path: String,
}

impl<'a> Node<'a> {
    pub fn root(value: &'a Value) -> Node<'a> {
        Node {
            value: Some(value),
            path: String::new(),
        }
    }

    /// The member `key` of this object.
    pub fn get(&self, key: &str) -> Node<'a> {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        };
        Node {
            value: self.value.and_then(|v| v.get(key)),
            path,
        }
    }

    /// The path to this place, e.g. `push.changes[0].new`.
    pub fn path(&self) -> &str {
        if self.path.is_empty() {
            "the body"
        } else {
            &self.path
        }
    }

    /// Absent or `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.value, None | Some(Value::Null))
    }

    fn error(&self, what: &str) -> WebhookError {
        payload(format!("{} {what}", self.path()))
    }

    /// A string that must be there.
    pub fn str(&self) -> Result<&'a str, WebhookError> {
        self.opt_str()?.ok_or_else(|| self.error("is missing"))
    }

    /// A string that may be absent or `null`.
    pub fn opt_str(&self) -> Result<Option<&'a str>, WebhookError> {
        match self.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error("is not a string")),
        }
    }

    /// A boolean that reads as `false` when absent.
    pub fn flag(&self) -> Result<bool, WebhookError> {
        match self.value {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error("is not true or false")),
        }
    }

    /// The elements of an array that must be there, each with its index in its path.
    pub fn items(&self) -> Result<Vec<Node<'a>>, WebhookError> {
        match self.value {
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, value)| Node {
                    value: Some(value),
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            None | Some(Value::Null) => Err(self.error("is missing")),
            Some(_) => Err(self.error("is not a list")),
        }
    }

    /// A commit id: 40 hex characters, returned in lowercase.
    pub fn commit(&self) -> Result<String, WebhookError> {
        let id = self.str()?;
        if id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(id.to_ascii_lowercase())
        } else {
            Err(self.error("is not a 40-character hex commit id"))
        }
    }

    /// The branch of a full ref name such as `refs/heads/feature/x`; none for tags
    /// and other refs.
    pub fn head_branch(&self) -> Result<Option<String>, WebhookError> {
        match self.str()?.strip_prefix("refs/heads/") {
            Some(name) => self.branch(name).map(Some),
            None => Ok(None),
        }
    }

    /// A branch name, checked as git would (`git check-ref-format --branch`).
    pub fn branch(&self, name: &str) -> Result<String, WebhookError> {
        if valid_branch(name) {
            Ok(name.to_owned())
        } else {
            Err(self.error(&format!("is not a valid branch name: {name:?}")))
        }
    }
}

impl Node<'_> {
    /// A commit id that may be absent, `null` or the all-zero "no commit"
    /// (a push that created its branch): `None` for each of those. One that
    /// is not a commit id is `None` too, and logged: such a field (a push's
    /// `before`) is only a hint, and must not cost the delivery its push.
    pub fn opt_commit(&self) -> Option<String> {
        if self.is_null() {
            return None;
        }
        match self.commit() {
            Ok(commit) => Some(commit).filter(|c| !is_zero(c)),
            Err(e) => {
                tracing::warn!("webhook: {e}; read as absent");
                None
            }
        }
    }
}

/// Whether a commit id is the forges' all-zero "no commit".
pub(crate) fn is_zero(commit: &str) -> bool {
    commit.bytes().all(|b| b == b'0')
}

/// git's rules for a branch name (`git check-ref-format --branch`), the one
/// rule triggers and project settings use too.
fn valid_branch(name: &str) -> bool {
    slipway_spec::names::check_branch_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_missing_field() {
        let value: Value = serde_json::json!({"push": {"changes": [{"new": {}}]}});
        let changes = Node::root(&value).get("push").get("changes").items();
        let hash = changes.expect("a list")[0]
            .get("new")
            .get("target")
            .get("hash");
        assert_eq!(
            hash.commit(),
            Err(payload("push.changes[0].new.target.hash is missing"))
        );
    }

    #[test]
    fn commits_are_forty_hex_characters() {
        let value =
            serde_json::json!({"a": "ABCDEF0123456789abcdef0123456789ABCDEF01", "b": "abc"});
        let root = Node::root(&value);
        assert_eq!(
            root.get("a").commit().as_deref(),
            Ok("abcdef0123456789abcdef0123456789abcdef01")
        );
        assert!(root.get("b").commit().is_err());
    }

    #[test]
    fn branch_names_follow_git() {
        for good in [
            "main",
            "feature/x",
            "release/1.2",
            "bugfix/SLIP-12",
            "ünïcode",
        ] {
            assert!(valid_branch(good), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a/", "x.lock", "a//b", "a@{1}", "@", ".x",
        ] {
            assert!(!valid_branch(bad), "{bad}");
        }
    }
}
