//! The Slipway server: the JSON API under `/api/v1`, push webhooks, live logs
//! over Server-Sent Events, token auth, health checks, and the background
//! work (in-process workers, poller, lease reaper) wired to the engine.
//!
//! Handlers are thin: they check the caller's role, call the store or the
//! engine, and shape JSON. Run logic lives in `slipway-engine`.

mod api;
mod auth;
mod error;
mod extract;
pub mod forwarded;
mod registry;
mod startup;
mod telemetry;
pub(crate) mod ui;

pub use api::ROUTES;
pub use startup::{Server, ServerConfig, StartError};

use std::sync::Arc;

use slipway_engine::Engine;
use slipway_secrets::SecretKey;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Engine,
    /// The artifact repository behind `/v2/` and `/raw/`.
    pub registry: slipway_registry::Registry,
    /// Releases, environments and their rollouts.
    pub deployer: slipway_deploy::Deployer,
    pub key: Arc<SecretKey>,
    /// Cancelled on shutdown: long polls and live streams end early.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The name under which a project's webhook secret is sealed. Not a valid
/// variable name, so no pipeline can ask for it as a secret.
pub const WEBHOOK_SECRET: &str = ".webhook";

impl AppState {
    /// Seals a project secret, bound to its project and name.
    pub fn seal(&self, project: slipway_store::ProjectId, name: &str, value: &[u8]) -> Vec<u8> {
        self.key.seal(value, associated(project, name).as_bytes())
    }

    pub fn open(
        &self,
        project: slipway_store::ProjectId,
        name: &str,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        open_sealed(&self.key, project, name, sealed)
    }
}

impl AppState {
    /// The work queue as in-process workers and agents see it.
    pub fn dispatch(&self) -> slipway_engine::LocalDispatch {
        slipway_engine::LocalDispatch {
            engine: self.engine.clone(),
        }
    }
}

/// A project secret sealed with `key`, opened; `None` when it does not open
/// (another key, or sealed for another project or name).
fn open_sealed(
    key: &slipway_secrets::SecretKey,
    project: slipway_store::ProjectId,
    name: &str,
    sealed: &[u8],
) -> Option<Vec<u8>> {
    key.open(sealed, associated(project, name).as_bytes()).ok()
}

fn associated(project: slipway_store::ProjectId, name: &str) -> String {
    format!("project:{project}/secret:{name}")
}
