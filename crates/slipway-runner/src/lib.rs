//! Executes jobs: a fresh workspace, steps as process groups on the host or in a
//! Docker container, live output with secrets masked, caches, artifacts, image
//! builds. [`run_job`] runs one job and is what the server will call; [`LocalRun`]
//! schedules a whole pipeline for `slipway run`.
//!
//! This crate knows nothing of storage, HTTP or the server; it reports through
//! [`Event`]s on a channel.

pub mod archive;
mod cgroup;
mod container;
mod docker;
mod event;
mod files;
mod gate;
mod host;
mod image_build;
mod image_owner;
mod job;
mod local;
mod mask;
mod orphans;
mod output;
mod push;
mod report;
pub mod sandbox;
mod services;
mod source;
mod stamps;
mod workspace;

pub use cgroup::describe as describe_job_containment;
pub use docker::Engine;
pub use event::{Event, EventSender, JobStatus, Stream};
pub use files::copy_tree;
pub use host::without_slipway_settings;
pub use job::{DEFAULT_TIMEOUT, RunContext, run_job};
pub use local::{LocalRun, RunSummary};
pub use mask::Masker;
pub use orphans::reap as reap_orphans;
pub use push::{PushedImage, RegistryAccess};
pub use report::{JobReport, StepReport, epoch_millis, millis};
pub use sandbox::{Sandbox, SandboxError};
pub use workspace::{
    ArtifactStore, BoxFuture, CacheRemote, CacheStore, Repository, STATE_DIR, Source, SourceStamps,
    Workspace, protection_level,
};
