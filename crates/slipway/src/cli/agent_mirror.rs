//! An agent's mirrors of the projects it runs jobs of: before each job, the
//! mirror is brought up to date with a bundle of only what it lacks (see
//! `POST /agent/runs/{run}/bundle`; nothing but the references when only
//! they moved), and the job checks out from it as a server's worker does
//! from the server's mirror. A mirror that cannot take the server's answer
//! (broken, or cut short) is moved aside and fetched whole again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use slipway_engine::{Assignment, EngineError};
use slipway_git::AgentMirror;
use tokio::io::AsyncWriteExt as _;

use super::client::Client;

/// How many times a busy server (503: another agent is being sent this
/// project) is asked before the job fails.
const BUSY_TRIES: u32 = 30;

/// The header with the digest of the server's branches and tags.
const REFS_DIGEST: &str = "slipway-refs-digest";

/// The mirrors under an agent's work directory (which jobs cannot read).
#[derive(Debug)]
pub struct Mirrors {
    root: PathBuf,
    /// One update of a project's mirror at a time: two fetches into one
    /// repository race on its refs. Other projects' go on meanwhile.
    updating: std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

fn failed(e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("cannot bring the project's mirror up to date: {e}"))
}

/// What the server answered: a bundle (in a file), or its references when
/// the mirror had every object; with the digest of those references.
enum Answer {
    Bundle(slipway_git::Incoming, String),
    Refs(String, String),
}

impl Mirrors {
    pub fn new(root: PathBuf) -> Mirrors {
        Mirrors {
            root,
            updating: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The project's mirror, holding the run's commit, its branches and
    /// tags as the server's are. A mirror that fails to take the server's
    /// answer is moved aside (to `ID.git.broken`) and fetched whole.
    pub async fn updated(&self, client: &Client, a: &Assignment) -> Result<PathBuf, EngineError> {
        let lock = {
            let mut map = self
                .updating
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(a.project_id).or_default().clone()
        };
        let _one = lock.lock().await;
        let path = self.root.join(format!("{}.git", a.project_id));
        let Err(first) = update(client, a, &path).await else {
            return Ok(path);
        };
        let aside = self.root.join(format!("{}.git.broken", a.project_id));
        tracing::warn!(
            project = a.project,
            "the project's mirror {} could not be brought up to date ({first}); moved to {} \
             and fetched whole",
            path.display(),
            aside.display()
        );
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&path, &aside).map_err(|e| {
            failed(format!(
                "{first}; and moving {} aside failed: {e} (remove it by hand)",
                path.display()
            ))
        })?;
        update(client, a, &path).await.map_err(|e| {
            failed(format!(
                "{e} (even into a new mirror at {}; the one before is at {})",
                path.display(),
                aside.display()
            ))
        })?;
        Ok(path)
    }
}

/// Asks the server for what the mirror lacks and takes it in; asks once
/// more when its branches and tags still differ from the server's (a new
/// tag on a commit it had comes as references only).
async fn update(client: &Client, a: &Assignment, path: &Path) -> Result<(), String> {
    let mirror = AgentMirror::open(path).await.map_err(|e| e.to_string())?;
    for _ in 0..2 {
        let digest = match ask(client, a, &mirror).await? {
            Answer::Bundle(file, digest) => {
                let r = mirror.receive(file.path(), &a.commit).await;
                r.map_err(|e| e.to_string())?;
                digest
            }
            Answer::Refs(refs, digest) => {
                let r = mirror.take_refs(&refs, &a.commit).await;
                r.map_err(|e| e.to_string())?;
                digest
            }
        };
        let ours = mirror.refs_digest().await.map_err(|e| e.to_string())?;
        if ours == digest {
            break;
        }
    }
    if !mirror.has(&a.commit).await {
        return Err(format!(
            "the server's answer did not bring commit {}",
            a.commit
        ));
    }
    Ok(())
}

/// `POST /agent/runs/RUN/bundle` with the mirror's haves, waiting out a
/// busy server; a bundle is written to a file in the mirror as it comes.
async fn ask(client: &Client, a: &Assignment, mirror: &AgentMirror) -> Result<Answer, String> {
    let have = mirror.haves().await.map_err(|e| e.to_string())?;
    let route = format!("/agent/runs/{}/bundle", a.run_id);
    let mut tries = 0;
    let mut resp = loop {
        let resp = client
            .request(Method::POST, &route)
            .json(&serde_json::json!({ "have": have }))
            .send()
            .await
            .map_err(|e| format!("POST {route}: {e}"))?;
        tries += 1;
        if resp.status() != StatusCode::SERVICE_UNAVAILABLE || tries >= BUSY_TRIES {
            break resp;
        }
        let wait = retry_after(&resp).unwrap_or(Duration::from_secs(5));
        tracing::info!(
            run = a.run_id,
            "the server is busy sending this project; asking again in {wait:?}"
        );
        tokio::time::sleep(wait).await;
    };
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("POST {route} answered {status}: {text}"));
    }
    let header = |name| {
        let value = resp.headers().get(name);
        value
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let digest = header(REFS_DIGEST);
    if header(reqwest::header::CONTENT_TYPE.as_str()).starts_with("text/plain") {
        let refs = resp
            .text()
            .await
            .map_err(|e| format!("POST {route}: {e}"))?;
        return Ok(Answer::Refs(refs, digest));
    }
    let file = mirror.incoming().map_err(|e| e.to_string())?;
    let mut out = tokio::fs::File::create(file.path())
        .await
        .map_err(|e| format!("{}: {e}", file.path().display()))?;
    let mut bytes = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("POST {route}: {e}"))?
    {
        bytes += chunk.len();
        out.write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", file.path().display()))?;
    }
    out.flush().await.map_err(|e| e.to_string())?;
    tracing::info!(
        run = a.run_id,
        project = a.project,
        bytes,
        "fetched the commits the project's mirror lacked"
    );
    Ok(Answer::Bundle(file, digest))
}

/// The `Retry-After` seconds of an answer, at most a minute.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.clamp(1, 60)))
}
