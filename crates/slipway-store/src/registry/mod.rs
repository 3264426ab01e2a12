//! The artifact repository's records: repositories, which blobs each may
//! serve, manifests, tags, uploads in progress, promotions and raw files. The
//! bytes themselves are in the blob store (`slipway-registry`); digests are
//! plain `sha256:…` strings here, already checked at the edge.

mod blobs;
mod gc;
mod manifests;
mod promotions;
mod raw;
mod repos;

use serde::Serialize;

pub use gc::RetiredTag;
pub use manifests::{ManifestRecord, NewManifest, TagPage};
pub use promotions::{NewPromotion, Promotion, RunImage};
pub use raw::RawFile;

/// What a repository holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepoKind {
    /// Images pushed here.
    Oci,
    /// A pull-through cache of another registry.
    OciProxy,
    /// Files under paths.
    Raw,
}

impl RepoKind {
    pub const ALL: [RepoKind; 3] = [RepoKind::Oci, RepoKind::OciProxy, RepoKind::Raw];

    pub fn as_str(self) -> &'static str {
        match self {
            RepoKind::Oci => "oci",
            RepoKind::OciProxy => "oci-proxy",
            RepoKind::Raw => "raw",
        }
    }

    pub fn parse(text: &str) -> Option<RepoKind> {
        RepoKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Whether tags may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagPolicy {
    /// Tags move; retention trims old ones.
    Ci,
    /// Tags never move; only admins and promotion write, only admins delete.
    Release,
}

impl TagPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TagPolicy::Ci => "ci",
            TagPolicy::Release => "release",
        }
    }

    pub fn parse(text: &str) -> Option<TagPolicy> {
        [TagPolicy::Ci, TagPolicy::Release]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repository {
    pub name: String,
    pub kind: RepoKind,
    pub policy: TagPolicy,
    /// Retention: the newest N tags of each image are kept.
    pub keep_tags: Option<i64>,
    /// Whether pulls need no token.
    pub anonymous_pull: bool,
    /// `oci-proxy`: the registry it caches (`http://host:port`).
    pub upstream: Option<String>,
    /// `oci-proxy`: how long a cached tag is trusted before it is checked again.
    pub ttl_seconds: Option<i64>,
    pub created_at: i64,
}
