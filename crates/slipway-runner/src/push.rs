//! Pushing a built image to Slipway's own registry, through the Docker
//! engine with credentials the server issued for this job (a short-lived
//! token limited to the job's push target).

use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::EventSender;
use crate::docker::Engine;
use crate::output::note;

/// Where and as whom a job pushes images.
#[derive(Clone, Serialize, Deserialize)]
pub struct RegistryAccess {
    /// `HOST:PORT` of the registry, as the Docker engine reaches it.
    pub host: String,
    pub username: String,
    pub password: String,
    /// Why the server issued no credentials for the job's target, if it did not.
    #[serde(default)]
    pub refused: Option<String>,
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("host", &self.host)
            .field("username", &self.username)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

/// An image a job pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedImage {
    /// `HOST:PORT/REPOSITORY/IMAGE:TAG`
    pub reference: String,
    pub digest: String,
}

/// Pushes `reference` (already tagged locally); returns the manifest digest the engine reports.
pub async fn push(
    engine: &Engine,
    access: &RegistryAccess,
    reference: &str,
    job: &str,
    events: &EventSender,
    cancel: &CancellationToken,
) -> Result<String, String> {
    if let Some(reason) = &access.refused {
        return Err(format!("cannot push {reference}: {reason}"));
    }
    let (name, tag) = reference
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .ok_or_else(|| format!("`{reference}` has no tag"))?;
    let credentials = DockerCredentials {
        username: Some(access.username.clone()),
        password: Some(access.password.clone()),
        serveraddress: Some(access.host.clone()),
        ..DockerCredentials::default()
    };
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = engine
        .docker
        .push_image(name, Some(options), Some(credentials));
    let mut digest = None;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = cancel.cancelled() => return Err("image push canceled".into()),
        };
        let Some(item) = item else { break };
        let info = item.map_err(|e| format!("cannot push {reference}: {e}"))?;
        if let Some(detail) = info.error_detail {
            return Err(format!(
                "cannot push {reference}: {}",
                detail.message.unwrap_or_default()
            ));
        }
        // The engine ends with `TAG: digest: sha256:… size: N`.
        if let Some(found) = info.status.as_deref().and_then(reported_digest) {
            digest = Some(found);
        }
    }
    let digest =
        digest.ok_or_else(|| format!("the engine pushed {reference} but reported no digest"))?;
    note(events, job, format!("pushed {reference} ({digest})")).await;
    Ok(digest)
}

fn reported_digest(status: &str) -> Option<String> {
    let mut words = status.split_whitespace();
    words.find(|w| *w == "digest:")?;
    words
        .next()
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_digest_the_engine_reports() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            reported_digest(&format!("42: digest: {d} size: 942")),
            Some(d)
        );
        assert_eq!(reported_digest("Pushed"), None);
    }
}
