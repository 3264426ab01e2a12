//! The web UI: server-rendered pages (askama), htmx for interactions, live
//! logs over Server-Sent Events, assets compiled into the binary. It reads
//! the same store and deployer as the API and obeys the same roles.

// Handlers answer with an axum `Response` on both sides; its size is axum's.
#![allow(clippy::result_large_err)]

mod actions;
pub mod ansi;
mod chart;
mod insight;
mod matrix;
mod pages;
pub mod session;
mod svg;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(pages::dashboard))
        .route("/ui/login", get(actions::login_form).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/registry", get(insight::registry))
        .route("/ui/projects/{project}", get(pages::project))
        .route("/ui/projects/{project}/trigger", post(actions::trigger))
        .route("/ui/projects/{project}/metrics", get(insight::metrics))
        .route("/ui/projects/{project}/runs/{number}", get(pages::run))
        .route("/ui/runs/{run}/stream", get(pages::stream))
        .route("/ui/jobs/{job}/log", get(pages::log))
        .route(
            "/ui/projects/{project}/environments/{env}",
            get(pages::environment),
        )
        .route(
            "/ui/projects/{project}/environments/{env}/live",
            get(pages::live),
        )
        .route(
            "/ui/projects/{project}/environments/{env}/rollback",
            post(actions::rollback),
        )
        .route(
            "/ui/projects/{project}/environments/{env}/deploy",
            post(actions::deploy),
        )
        .route(
            "/ui/projects/{project}/releases/{version}",
            get(insight::release),
        )
        .route("/ui/deployments/{id}/decide", post(actions::decide))
        .route("/ui/assets/{name}", get(asset))
}

/// What every page's header shows.
pub struct Page {
    pub user: String,
    pub role: String,
    pub csrf: String,
}

impl Page {
    pub fn of(viewer: &session::Viewer) -> Page {
        Page {
            user: viewer.0.user.name.clone(),
            role: viewer.0.user.role.clone(),
            csrf: viewer.0.csrf.clone(),
        }
    }
}

pub type PageResult = Result<Response, Response>;

/// A page from its template.
pub fn render(t: impl askama::Template) -> PageResult {
    t.render()
        .map(|html| axum::response::Html(html).into_response())
        .map_err(fail)
}

/// An error as a page: what went wrong, with its status. What the URL names
/// and does not exist (a run, job or release number) is a 404, not a fault.
pub fn fail(e: impl std::fmt::Display + 'static) -> Response {
    if is_not_found(&e) {
        return (StatusCode::NOT_FOUND, e.to_string()).into_response();
    }
    let deploy = (&e as &dyn std::any::Any).downcast_ref::<slipway_deploy::DeployError>();
    match deploy {
        Some(slipway_deploy::DeployError::Invalid(why)) => {
            return (StatusCode::BAD_REQUEST, why.clone()).into_response();
        }
        Some(slipway_deploy::DeployError::Forbidden(why)) => {
            return (StatusCode::FORBIDDEN, why.clone()).into_response();
        }
        _ => {}
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Slipway could not show this page: {e}"),
    )
        .into_response()
}

fn is_not_found(e: &dyn std::any::Any) -> bool {
    use slipway_store::StoreError;
    let store = e.downcast_ref::<StoreError>().or_else(|| {
        match e.downcast_ref::<slipway_engine::EngineError>() {
            Some(slipway_engine::EngineError::Store(inner)) => Some(inner),
            _ => match e.downcast_ref::<slipway_deploy::DeployError>() {
                Some(slipway_deploy::DeployError::Store(inner)) => Some(inner),
                _ => None,
            },
        }
    });
    matches!(store, Some(StoreError::NotFound(_)))
}

pub async fn project_of(state: &AppState, name: &str) -> Result<slipway_store::Project, Response> {
    match state.engine.store.project(name).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => {
            Err((StatusCode::NOT_FOUND, format!("no project named `{name}`")).into_response())
        }
        Err(e) => Err(fail(e)),
    }
}

const HTMX: &str = include_str!("../../assets/htmx.min.js");
const CSS: &str = include_str!("../../assets/app.css");

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "htmx.min.js" => (HTMX, "text/javascript"),
        "app.css" => (CSS, "text/css"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
