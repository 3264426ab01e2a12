//! Which forge sent a delivery, and where each one puts its event, signature and id.

use crate::{Provider, WebhookError};

/// A request's headers, looked up by name in any case. Empty values count as
/// absent: Gitea sends an empty `X-Gitea-Signature` when the webhook has no secret.
#[derive(Debug)]
pub(crate) struct Headers<'h> {
    pairs: &'h [(&'h str, &'h str)],
}

/// How a provider's signature header is written.
#[derive(Debug)]
pub(crate) struct SignatureHeader {
    /// Header names, the preferred one first.
    pub names: &'static [&'static str],
    /// What comes before the hex digest, if anything.
    pub prefix: &'static str,
}

impl<'h> Headers<'h> {
    pub fn new(pairs: &'h [(&'h str, &'h str)]) -> Headers<'h> {
        Headers { pairs }
    }

    /// The value of the first of `names` that is present and not empty.
    pub fn first(&self, names: &[&str]) -> Option<&'h str> {
        names.iter().find_map(|name| self.get(name))
    }

    fn get(&self, name: &str) -> Option<&'h str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
            .find(|value| !value.is_empty())
    }

    /// The sender. Gitea also sends GitHub's headers, so it is looked for first.
    pub fn provider(&self) -> Result<Provider, WebhookError> {
        if self.first(event_headers(Provider::Gitea)).is_some() {
            Ok(Provider::Gitea)
        } else if self.first(event_headers(Provider::GitHub)).is_some() {
            Ok(Provider::GitHub)
        } else if let Some(key) = self.first(&["X-Event-Key"]) {
            Ok(self.bitbucket(key))
        } else {
            Err(WebhookError::UnknownProvider)
        }
    }

    /// Both Bitbucket products send `X-Event-Key`; their push events differ, and
    /// only Cloud sends `X-Hook-UUID` and `X-Request-UUID`.
    fn bitbucket(&self, key: &str) -> Provider {
        let cloud = match key {
            "repo:push" => true,
            "repo:refs_changed" | "diagnostics:ping" => false,
            _ => self.first(&["X-Hook-UUID", "X-Request-UUID"]).is_some(),
        };
        if cloud {
            Provider::BitbucketCloud
        } else {
            Provider::BitbucketDataCenter
        }
    }

    /// The event name; present, since it is how the provider was found.
    pub fn event(&self, provider: Provider) -> &'h str {
        self.first(event_headers(provider)).unwrap_or_default()
    }

    /// The provider's id for this delivery.
    pub fn delivery_id(&self, provider: Provider) -> Option<&'h str> {
        self.first(match provider {
            Provider::GitHub => &["X-GitHub-Delivery"],
            Provider::Gitea => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
            // X-Hook-UUID names the webhook, the same on every delivery: not an id.
            Provider::BitbucketCloud => &["X-Request-UUID"],
            Provider::BitbucketDataCenter => &["X-Request-Id"],
        })
    }
}

fn event_headers(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::GitHub => &["X-GitHub-Event"],
        Provider::Gitea => &["X-Forgejo-Event", "X-Gitea-Event"],
        Provider::BitbucketCloud | Provider::BitbucketDataCenter => &["X-Event-Key"],
    }
}

/// Where the provider puts the HMAC-SHA256 of the body.
pub(crate) fn signature_header(provider: Provider) -> SignatureHeader {
    match provider {
        Provider::GitHub => SignatureHeader {
            names: &["X-Hub-Signature-256"],
            prefix: "sha256=",
        },
        Provider::Gitea => SignatureHeader {
            names: &["X-Forgejo-Signature", "X-Gitea-Signature"],
            prefix: "",
        },
        Provider::BitbucketCloud | Provider::BitbucketDataCenter => SignatureHeader {
            names: &["X-Hub-Signature"],
            prefix: "sha256=",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_in_any_case_and_empty_values_are_absent() {
        let pairs = [("x-gitea-signature", ""), ("X-GITEA-EVENT", "push")];
        let headers = Headers::new(&pairs);
        assert_eq!(headers.first(&["X-Gitea-Event"]), Some("push"));
        assert_eq!(headers.first(&["X-Gitea-Signature"]), None);
    }

    #[test]
    fn gitea_wins_over_the_github_headers_it_also_sends() {
        let pairs = [("X-GitHub-Event", "push"), ("X-Gitea-Event", "push")];
        assert_eq!(Headers::new(&pairs).provider(), Ok(Provider::Gitea));
    }

    #[test]
    fn bitbucket_products_are_told_apart() {
        let cloud = [("X-Event-Key", "repo:updated"), ("X-Hook-UUID", "{1}")];
        let dc = [("X-Event-Key", "pr:opened"), ("X-Request-Id", "abc")];
        assert_eq!(
            Headers::new(&cloud).provider(),
            Ok(Provider::BitbucketCloud)
        );
        assert_eq!(
            Headers::new(&dc).provider(),
            Ok(Provider::BitbucketDataCenter)
        );
    }
}
