//! The hostile-user suite: each test is one attack a developer with a pushed
//! branch, an agent token or a captured request would try against a real
//! server, and asserts that it is refused. Every attack was first seen to
//! succeed on the code before the fix (the closing note of issue 12 lists
//! each result before and after).

#[path = "../common/mod.rs"]
mod common;

mod agent_bundle;
mod agent_times;
mod caches;
mod checkouts;
mod deployments;
mod faults;
mod input;
mod jobs;
mod people;
mod registry_auth;
mod releases;
mod secrets;
mod services;
mod support;
mod trust;
mod workspace_paths;
