//! Verification and parsing of push webhooks.
//!
//! A forge tells Slipway about a push by POSTing a webhook delivery. This crate takes
//! one delivery as plain data (its headers, its raw body and the project's webhook
//! secret) and answers with the branches that moved. It knows GitHub, Gitea (and
//! Forgejo), Bitbucket Cloud and Bitbucket Data Center.
//!
//! It owns telling the providers apart, checking a delivery's HMAC-SHA256 signature
//! (in constant time, before a byte of the body is parsed) and reading each
//! provider's push payload. It must not know the HTTP framework that received the
//! request, where secrets or runs are stored, or git itself: it does no I/O and is
//! not async.

mod bitbucket_cloud;
mod bitbucket_dc;
mod github;
mod headers;
mod json;
mod signature;

use std::fmt;

use headers::Headers;
use json::Node;

/// The commit of a deleted branch: forty zeros, as the forges write it.
pub const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// The forge a delivery came from, known by its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// github.com or GitHub Enterprise: `X-GitHub-Event`, `X-Hub-Signature-256`.
    GitHub,
    /// Gitea or Forgejo: `X-Gitea-Event` (or `X-Forgejo-Event`), `X-Gitea-Signature`.
    Gitea,
    /// bitbucket.org: `X-Event-Key: repo:push`, `X-Hub-Signature`.
    BitbucketCloud,
    /// Self-hosted Bitbucket: `X-Event-Key: repo:refs_changed`, `X-Hub-Signature`.
    BitbucketDataCenter,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::GitHub => "GitHub",
            Provider::Gitea => "Gitea",
            Provider::BitbucketCloud => "Bitbucket Cloud",
            Provider::BitbucketDataCenter => "Bitbucket Data Center",
        })
    }
}

/// A delivery whose signature held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Who sent it.
    pub provider: Provider,
    /// The provider's id for this delivery, to recognise one delivered twice.
    pub id: Option<String>,
    /// The provider's event name, e.g. `push`, `ping`, `repo:refs_changed`.
    pub event: String,
    /// The branches that moved; empty for other events (pings, tags, pull requests).
    pub pushes: Vec<Push>,
    /// Who pushed, as the payload says; `None` when it says nothing usable.
    pub pusher: Option<Pusher>,
}

/// Who pushed, in the forge's words: its account's login, display name and
/// email as far as the payload carries them. Only as true as the forge's
/// account data; the signature says the forge sent it, nothing more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pusher {
    pub login: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// One branch that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The branch name without `refs/heads/`; it may contain slashes (`feature/x`).
    pub branch: String,
    /// The commit the branch now points at: 40 lowercase hex characters, or
    /// [`NO_COMMIT`] when the branch was deleted.
    pub commit: String,
    /// Whether the push deleted the branch.
    pub deleted: bool,
    /// The commit the branch pointed at before the push, when the payload
    /// says (not for a branch the push created): a run measures what the
    /// push brought from there.
    pub before: Option<String>,
}

impl Push {
    fn new(branch: String, commit: String, deleted: bool) -> Push {
        let commit = if deleted {
            NO_COMMIT.to_owned()
        } else {
            commit
        };
        Push {
            branch,
            commit,
            deleted,
            before: None,
        }
    }

    /// A deleted branch builds nothing, so where it was does not matter.
    fn moved_from(self, before: Option<String>) -> Push {
        Push {
            before: before.filter(|_| !self.deleted),
            ..self
        }
    }
}

/// Why a delivery was refused.
///
/// A server would answer `UnknownProvider` and `Payload` with 400, and
/// `MissingSignature` and `BadSignature` with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No header names a known forge's event.
    #[error(
        "not a webhook from a known forge: expected an X-GitHub-Event, X-Gitea-Event, \
         X-Forgejo-Event or X-Event-Key header"
    )]
    UnknownProvider,
    /// The delivery carries no signature: the webhook has no secret set.
    #[error("the delivery is not signed: set the project's webhook secret on the forge")]
    MissingSignature,
    /// The signature does not match the body under the project's secret.
    #[error("the delivery's signature does not match the project's webhook secret")]
    BadSignature,
    /// The signature held but the body is not the payload the event promises.
    #[error("unexpected webhook payload: {0}")]
    Payload(String),
}

/// Check a delivery's signature against `secret`, then read the pushes it carries.
///
/// `headers` are the request's headers, names in any case; `body` is the raw
/// request body, byte for byte as received. An empty `secret` never verifies.
pub fn verify_and_parse(
    headers: &[(&str, &str)],
    body: &[u8],
    secret: &[u8],
) -> Result<Delivery, WebhookError> {
    let headers = Headers::new(headers);
    let provider = headers.provider()?;
    signature::verify(&headers, provider, body, secret)?;
    let event = headers.event(provider).to_owned();
    let (pushes, pusher) = parse(&headers, provider, &event, body)?;
    Ok(Delivery {
        provider,
        id: headers.delivery_id(provider).map(str::to_owned),
        event,
        pushes,
        pusher,
    })
}

/// The pushes of a verified delivery and who pushed; none for events that
/// are not pushes.
fn parse(
    headers: &Headers,
    provider: Provider,
    event: &str,
    body: &[u8],
) -> Result<(Vec<Push>, Option<Pusher>), WebhookError> {
    let read: fn(&Node) -> Result<Vec<Push>, WebhookError> = match (provider, event) {
        (Provider::GitHub | Provider::Gitea, "push") => github::push,
        (Provider::Gitea, "delete") => github::gitea_delete,
        (Provider::BitbucketCloud, "repo:push") => bitbucket_cloud::push,
        (Provider::BitbucketDataCenter, "repo:refs_changed") => bitbucket_dc::refs_changed,
        _ => return Ok((Vec::new(), None)),
    };
    let value = json::parse(headers, body)?;
    let root = Node::root(&value);
    Ok((read(&root)?, pusher(provider, &root)))
}

/// Who pushed, where each forge says it: GitHub `pusher.{name,email}` and
/// `sender.login`; Gitea `pusher.{login,full_name,email}`; Bitbucket
/// `actor` (Cloud: `nickname`, `display_name`; Data Center: `name`,
/// `displayName`, `emailAddress`). Best effort: a field of another shape
/// is left out, never an error.
fn pusher(provider: Provider, root: &Node) -> Option<Pusher> {
    let text = |node: Node| {
        node.opt_str()
            .ok()
            .flatten()
            .map(str::to_owned)
            .filter(|s| !s.trim().is_empty())
    };
    let found = match provider {
        Provider::GitHub => Pusher {
            login: text(root.get("sender").get("login")),
            name: text(root.get("pusher").get("name")),
            email: text(root.get("pusher").get("email")),
        },
        Provider::Gitea => Pusher {
            login: text(root.get("pusher").get("login"))
                .or_else(|| text(root.get("pusher").get("username")))
                .or_else(|| text(root.get("sender").get("login"))),
            name: text(root.get("pusher").get("full_name")),
            email: text(root.get("pusher").get("email")),
        },
        Provider::BitbucketCloud => Pusher {
            login: text(root.get("actor").get("nickname")),
            name: text(root.get("actor").get("display_name")),
            email: None,
        },
        Provider::BitbucketDataCenter => Pusher {
            login: text(root.get("actor").get("name")),
            name: text(root.get("actor").get("displayName")),
            email: text(root.get("actor").get("emailAddress")),
        },
    };
    (found != Pusher::default()).then_some(found)
}
