//! A repository as people write it (API body, CLI flags, the server's config
//! file), checked once into the store's [`Repository`].

use serde::Deserialize;
use slipway_store::{RepoKind, Repository, TagPolicy};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSpec {
    pub name: String,
    /// `oci`, `oci-proxy` or `raw`.
    pub kind: String,
    /// `ci` (default) or `release`.
    pub policy: Option<String>,
    pub keep_tags: Option<i64>,
    #[serde(default)]
    pub anonymous_pull: bool,
    pub upstream: Option<String>,
    pub ttl_seconds: Option<i64>,
}

impl RepoSpec {
    /// The repository, or what is wrong with the spec and how to fix it.
    pub fn check(&self) -> Result<Repository, String> {
        let name = &self.name;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !name_ok {
            return Err(format!(
                "repository name `{name}` must be 1-64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit"
            ));
        }
        let kind = RepoKind::parse(&self.kind).ok_or_else(|| {
            format!(
                "repository kind `{}` is unknown; use oci, oci-proxy or raw",
                self.kind
            )
        })?;
        let policy = match self.policy.as_deref() {
            None => TagPolicy::Ci,
            Some(p) => TagPolicy::parse(p)
                .ok_or_else(|| format!("tag policy `{p}` is unknown; use ci or release"))?,
        };
        if policy == TagPolicy::Release && kind != RepoKind::Oci {
            return Err(format!(
                "only oci repositories take a release policy, not {}",
                kind.as_str()
            ));
        }
        if let Some(keep) = self.keep_tags.filter(|k| *k < 1) {
            return Err(format!("keep_tags must be at least 1, not {keep}"));
        }
        if self.keep_tags.is_some() && policy == TagPolicy::Release {
            return Err("a release repository keeps every tag; drop keep_tags".into());
        }
        match (kind, &self.upstream) {
            (RepoKind::OciProxy, None) => {
                return Err(
                    "an oci-proxy repository needs an upstream URL (http://HOST:PORT)".into(),
                );
            }
            (RepoKind::OciProxy, Some(url)) if !url.starts_with("http://") => {
                return Err(format!(
                    "upstream `{url}` must be an http:// URL (this build speaks plain HTTP; put a TLS proxy in front for https)"
                ));
            }
            (RepoKind::Oci | RepoKind::Raw, Some(_)) => {
                return Err(format!(
                    "only oci-proxy repositories have an upstream, not {}",
                    kind.as_str()
                ));
            }
            _ => {}
        }
        Ok(Repository {
            name: name.clone(),
            kind,
            policy,
            keep_tags: self.keep_tags,
            anonymous_pull: self.anonymous_pull,
            upstream: self
                .upstream
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            ttl_seconds: self
                .ttl_seconds
                .or((kind == RepoKind::OciProxy).then_some(300)),
            created_at: 0,
        })
    }
}
