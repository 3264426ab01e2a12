//! The run lifecycle on the server: turning a push, a poll or a manual trigger
//! into a run for one exact commit, handing its jobs to workers (in-process or
//! remote agents, through [`Dispatch`]), and keeping runs moving as jobs finish.
//!
//! It runs jobs with `slipway-runner`, the same code as `slipway run`; it knows
//! nothing of HTTP: the server exposes it, and the agent implements
//! [`Dispatch`] over HTTP.

mod dispatch;
mod paths;
mod poll;
mod trigger;
mod worker;

use std::sync::Arc;

use slipway_store::Store;
use tokio::sync::Notify;

pub use dispatch::{Assignment, DEFAULT_LEASE, Dispatch, LocalDispatch};
pub use paths::Paths;
pub use poll::{poll_once, run_poller, run_reaper};
pub use trigger::Target;
pub use worker::{Worker, WorkerConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    #[error("git: {0}")]
    Git(#[from] slipway_git::GitError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What every part of the server shares: the store, where files go, and the
/// signal that new work may be waiting.
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Store,
    pub paths: Paths,
    /// Rung whenever jobs may have become claimable, so waiting workers and
    /// long-polling agents look again instead of polling on a timer.
    pub work: Arc<Notify>,
    /// The id of every job whose log just grew, for live log streams.
    pub logs: tokio::sync::broadcast::Sender<i64>,
    /// How long a claim holds without a heartbeat before the job is re-queued.
    pub lease: std::time::Duration,
    /// At most this many jobs run at once over every worker and agent.
    pub max_running: Option<i64>,
}

impl Engine {
    pub fn new(store: Store, paths: Paths) -> Engine {
        Engine {
            store,
            paths,
            work: Arc::new(Notify::new()),
            logs: tokio::sync::broadcast::channel(1024).0,
            lease: dispatch::DEFAULT_LEASE,
            max_running: None,
        }
    }

    pub(crate) fn wake_workers(&self) {
        self.work.notify_waiters();
    }
}
