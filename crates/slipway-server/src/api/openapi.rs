//! The API described as OpenAPI 3.1, built from one table so it cannot drift
//! from the routes' roles (the role tests read the same table).

use crate::extract::Json;
use serde_json::{Map, Value, json};

/// (method, path, role needed, summary). `none` is for routes that check
/// something else (webhook signatures) or nothing (health).
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("get", "/projects", "viewer", "List projects"),
    (
        "post",
        "/projects",
        "admin",
        "Add a project; returns its webhook secret once",
    ),
    ("get", "/projects/{project}", "viewer", "Show a project"),
    (
        "delete",
        "/projects/{project}",
        "admin",
        "Remove a project with its runs",
    ),
    (
        "post",
        "/projects/{project}/trigger",
        "developer",
        "Start a run for a branch or commit",
    ),
    (
        "get",
        "/projects/{project}/runs",
        "viewer",
        "List runs, newest first",
    ),
    (
        "get",
        "/projects/{project}/runs/{number}",
        "viewer",
        "A run with its jobs and transitions",
    ),
    (
        "post",
        "/projects/{project}/runs/{number}/cancel",
        "developer",
        "Cancel a run",
    ),
    (
        "post",
        "/projects/{project}/runs/{number}/rerun",
        "developer",
        "Run again: every job, or with `failed_only` those that did not succeed",
    ),
    (
        "get",
        "/projects/{project}/runs/{number}/log",
        "viewer",
        "Follow a run's logs (Server-Sent Events)",
    ),
    (
        "get",
        "/projects/{project}/secrets",
        "developer",
        "Secrets with their scopes (never values)",
    ),
    (
        "put",
        "/projects/{project}/secrets/{name}",
        "admin",
        "Set a secret (value in the body; scope in the query: jobs=protected|any|none, environments)",
    ),
    (
        "delete",
        "/projects/{project}/secrets/{name}",
        "admin",
        "Remove a secret",
    ),
    ("get", "/jobs/{job}/log", "viewer", "A page of a job's log"),
    (
        "get",
        "/jobs/{job}/log/stream",
        "viewer",
        "Follow a job's log (Server-Sent Events)",
    ),
    (
        "post",
        "/tokens",
        "admin",
        "Create an API token; returns it once",
    ),
    (
        "post",
        "/agent/claim",
        "agent",
        "Agents: claim a job (long poll)",
    ),
    (
        "post",
        "/agent/jobs/{job}/heartbeat",
        "agent",
        "Agents: keep a claim alive",
    ),
    (
        "post",
        "/agent/jobs/{job}/log",
        "agent",
        "Agents: store a log chunk",
    ),
    (
        "post",
        "/agent/jobs/{job}/finish",
        "agent",
        "Agents: report a job's end",
    ),
    (
        "post",
        "/agent/jobs/{job}/release",
        "agent",
        "Agents: give a job back",
    ),
    (
        "get",
        "/agent/runs/{run}/source",
        "agent",
        "Agents: the run's source tree (tar)",
    ),
    (
        "post",
        "/agent/runs/{run}/bundle",
        "agent",
        "Agents: the run's commit, branches and tags as a git bundle, less the commits the agent has",
    ),
    (
        "get",
        "/agent/runs/{run}/artifacts/{name}",
        "agent",
        "Agents: a job's artifacts (tar)",
    ),
    (
        "get",
        "/agent/jobs/{job}/caches/{key}",
        "agent",
        "Agents: a cache entry of the held job's project and protection level (tar)",
    ),
    (
        "put",
        "/agent/jobs/{job}/caches/{key}",
        "agent",
        "Agents: share a cache entry of the held job's project and protection level (tar)",
    ),
    (
        "put",
        "/agent/runs/{run}/artifacts/{name}",
        "agent",
        "Agents: upload a job's artifacts (tar)",
    ),
    ("get", "/repositories", "viewer", "Artifact repositories"),
    (
        "post",
        "/repositories",
        "admin",
        "Add a repository (oci, oci-proxy or raw)",
    ),
    (
        "delete",
        "/repositories/{name}",
        "admin",
        "Remove a repository with its manifests, tags and files",
    ),
    (
        "get",
        "/repositories/{name}/images",
        "viewer",
        "A repository's images and tags",
    ),
    (
        "post",
        "/promotions",
        "developer",
        "Promote an image to another repository by reference",
    ),
    (
        "get",
        "/promotions",
        "viewer",
        "Promotion history of an image (?image=&digest=)",
    ),
    (
        "post",
        "/registry/gc",
        "admin",
        "Apply retention and collect unreferenced blobs",
    ),
    (
        "get",
        "/projects/{project}/quality",
        "viewer",
        "Quality gate outcomes over time (?branch=&limit=)",
    ),
    (
        "get",
        "/projects/{project}/status",
        "viewer",
        "Every environment: release, images, run, commit, author, deployed when and by whom, health, what waits",
    ),
    (
        "get",
        "/projects/{project}/releases",
        "viewer",
        "List releases, newest first",
    ),
    (
        "get",
        "/projects/{project}/releases/{version}",
        "viewer",
        "A release: commit, run, image digests, commits since the previous release",
    ),
    (
        "get",
        "/projects/{project}/audit",
        "viewer",
        "The audit log: who decided, deployed, promoted or rolled back what, when and why",
    ),
    (
        "get",
        "/projects/{project}/environments/{env}/deployments",
        "viewer",
        "An environment's deployments, newest first, with who may approve those waiting",
    ),
    (
        "post",
        "/projects/{project}/environments/{env}/deploy",
        "developer",
        "Deploy a release version (through the environment's decision point)",
    ),
    (
        "post",
        "/projects/{project}/environments/{env}/promote",
        "developer",
        "Deploy what another environment runs, healthy, to this one: the same release",
    ),
    (
        "post",
        "/projects/{project}/environments/{env}/rollback",
        "developer",
        "Go back to the previous release, or `to` a version, through the same rollout",
    ),
    (
        "get",
        "/deployments/{id}",
        "viewer",
        "A deployment with its decisions",
    ),
    (
        "post",
        "/deployments/{id}/approve",
        "viewer",
        "Approve a waiting deployment (the environment's rule says who may)",
    ),
    (
        "post",
        "/deployments/{id}/reject",
        "viewer",
        "Reject a waiting deployment with a comment",
    ),
    (
        "get",
        "/trace/{digest}",
        "viewer",
        "From an image digest to its releases, runs, commits and environments",
    ),
    (
        "get",
        "/projects/{project}/metrics",
        "viewer",
        "Delivery metrics of an environment (`environment`, `days`): deployment frequency, lead time, change failure rate, time to restore, job durations and success, queue time, with their definitions",
    ),
    (
        "post",
        "/users",
        "admin",
        "Add (or with `replace` change) a web UI user: name, password, role, email, groups",
    ),
];

pub async fn document() -> Json<Value> {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, role, summary) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = json!({
            "summary": summary,
            "x-slipway-role": role,
            "security": [{ "token": [] }],
            "responses": {
                "200": { "description": "success" },
                "401": { "$ref": "#/components/responses/Error" },
                "403": { "$ref": "#/components/responses/Error" }
            }
        });
    }
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "Slipway API", "version": env!("CARGO_PKG_VERSION") },
        "servers": [{ "url": "/api/v1" }],
        "paths": paths,
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer", "description": "An API token (slw_…)" } },
            "responses": { "Error": { "description": "An error", "content": { "application/json": { "schema": {
                "type": "object",
                "properties": { "error": { "type": "object", "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" } } } }
            } } } } }
        }
    }))
}
