//! An agent's mirrors of the projects it runs jobs of: before a job, the
//! mirror is brought up to date with a bundle of only what it lacks (see
//! `POST /agent/runs/{run}/bundle`), and the job checks out from it as a
//! server's worker does from the server's mirror.

use std::path::PathBuf;

use reqwest::Method;
use slipway_engine::{Assignment, EngineError};
use slipway_git::AgentMirror;

use super::client::Client;

/// The mirrors under an agent's work directory (which jobs cannot read).
#[derive(Debug)]
pub struct Mirrors {
    root: PathBuf,
    /// One update at a time: two fetches into one repository race on its refs.
    updating: tokio::sync::Mutex<()>,
}

fn failed(e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("cannot bring the project's mirror up to date: {e}"))
}

impl Mirrors {
    pub fn new(root: PathBuf) -> Mirrors {
        Mirrors {
            root,
            updating: tokio::sync::Mutex::new(()),
        }
    }

    /// The project's mirror, holding the run's commit; fetched from the
    /// server only when it does not yet.
    pub async fn updated(&self, client: &Client, a: &Assignment) -> Result<PathBuf, EngineError> {
        let _one = self.updating.lock().await;
        let path = self.root.join(format!("{}.git", a.project_id));
        let mirror = AgentMirror::open(&path).await.map_err(failed)?;
        if mirror.has(&a.commit).await {
            return Ok(path);
        }
        let have = mirror.haves().await.map_err(failed)?;
        let route = format!("/agent/runs/{}/bundle", a.run_id);
        let resp = client
            .request(Method::POST, &route)
            .json(&serde_json::json!({ "have": have }))
            .send()
            .await
            .map_err(failed)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(failed(format!("POST {route} answered {status}: {text}")));
        }
        let bundle = resp.bytes().await.map_err(failed)?;
        tracing::info!(
            run = a.run_id,
            project = a.project,
            bytes = bundle.len(),
            "fetched the commits the project's mirror lacked"
        );
        mirror.receive(&bundle, &a.commit).await.map_err(failed)?;
        Ok(path)
    }
}
