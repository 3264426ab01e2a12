//! The routes. Each handler names the role it needs first thing.

mod agent;
mod deploy;
mod health;
mod hooks;
pub(crate) mod logs;
mod openapi;
mod projects;
mod registry;
mod runs;
mod secrets;
mod tokens;

use axum::Router;
use axum::routing::{get, post, put};

use crate::AppState;
pub use openapi::ROUTES;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/projects", get(projects::list).post(projects::add))
        .route(
            "/projects/{project}",
            get(projects::show).delete(projects::remove),
        )
        .route("/projects/{project}/trigger", post(runs::trigger))
        .route("/projects/{project}/runs", get(runs::list))
        .route("/projects/{project}/quality", get(runs::quality))
        .route("/projects/{project}/runs/{number}", get(runs::show))
        .route(
            "/projects/{project}/runs/{number}/cancel",
            post(runs::cancel),
        )
        .route("/projects/{project}/runs/{number}/rerun", post(runs::rerun))
        .route("/projects/{project}/runs/{number}/log", get(logs::run_log))
        .route("/projects/{project}/secrets", get(secrets::list))
        .route(
            "/projects/{project}/secrets/{name}",
            put(secrets::set).delete(secrets::remove),
        )
        .route("/jobs/{job}/log", get(logs::page))
        .route("/jobs/{job}/log/stream", get(logs::stream))
        .route("/tokens", post(tokens::create))
        .route("/users", post(tokens::add_user))
        .route("/agent/claim", post(agent::claim))
        .route("/agent/jobs/{job}/heartbeat", post(agent::heartbeat))
        .route("/agent/jobs/{job}/log", post(agent::log))
        .route("/agent/jobs/{job}/finish", post(agent::finish))
        .route("/agent/jobs/{job}/release", post(agent::release))
        .route("/agent/runs/{run}/source", get(agent::source))
        .route("/agent/runs/{run}/bundle", post(agent::bundle))
        .route(
            "/agent/runs/{run}/artifacts/{name}",
            // Artifacts and caches may be large; every other body keeps axum's 2 MiB limit.
            get(agent::download_artifacts)
                .put(agent::upload_artifacts)
                .layer(axum::extract::DefaultBodyLimit::max(512 * 1024 * 1024)),
        )
        .route(
            "/agent/jobs/{job}/caches/{key}",
            get(agent::download_cache)
                .put(agent::upload_cache)
                .layer(axum::extract::DefaultBodyLimit::max(512 * 1024 * 1024)),
        )
        .route("/repositories", get(registry::list).post(registry::add))
        .route(
            "/repositories/{name}",
            axum::routing::delete(registry::remove),
        )
        .route("/repositories/{name}/images", get(registry::images))
        .route(
            "/promotions",
            get(registry::promotions).post(registry::promote),
        )
        .route("/registry/gc", post(registry::gc))
        .route("/projects/{project}/status", get(deploy::status))
        .route("/projects/{project}/releases", get(deploy::releases))
        .route(
            "/projects/{project}/releases/{version}",
            get(deploy::release),
        )
        .route("/projects/{project}/audit", get(deploy::audit))
        .route(
            "/projects/{project}/environments/{env}/deployments",
            get(deploy::deployments),
        )
        .route(
            "/projects/{project}/environments/{env}/deploy",
            post(deploy::deploy),
        )
        .route(
            "/projects/{project}/environments/{env}/promote",
            post(deploy::promote),
        )
        .route(
            "/projects/{project}/environments/{env}/rollback",
            post(deploy::rollback),
        )
        .route("/deployments/{id}", get(deploy::deployment))
        .route("/deployments/{id}/approve", post(deploy::approve))
        .route("/deployments/{id}/reject", post(deploy::reject))
        .route("/trace/{digest}", get(deploy::trace))
        .route("/projects/{project}/metrics", get(deploy::metrics))
        .route("/openapi.json", get(openapi::document));
    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/hooks/{project}", post(hooks::receive))
        .route("/metrics", get(crate::telemetry::scrape))
        .nest("/api/v1", api)
        .merge(crate::registry::router())
        .merge(crate::ui::router())
        .route_layer(axum::middleware::from_fn(crate::telemetry::track))
        .fallback(|| async {
            crate::error::ApiError::not_found("no such route; see /api/v1/openapi.json")
        })
        .with_state(state)
}
