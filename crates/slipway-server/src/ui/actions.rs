//! What the UI's forms do: log in and out, start a run, deploy, roll back,
//! approve or reject. Every form carries the session's CSRF token, and each
//! action needs the role the API asks for the same thing.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use slipway_secrets::{Role, Token, TokenHash};

use super::session::{self, LIFETIME_MS, Viewer};
use super::{fail, project_of};
use crate::AppState;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    next: String,
    problem: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

pub async fn login_form(Query(q): Query<Next>) -> Response {
    page(
        LoginPage {
            next: safe_next(q.next.as_deref()),
            problem: None,
        },
        StatusCode::OK,
    )
}

fn page(t: LoginPage, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => fail(e),
    }
}

/// Only paths of this UI: a login link cannot send people elsewhere, and
/// nothing but visible ASCII reaches the `Location` header (a line break
/// there would add headers of the sender's choosing).
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/ui") && !n.starts_with("//"))
        .filter(|n| n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'))
        .unwrap_or("/ui")
        .to_string()
}

#[derive(Debug, Deserialize)]
pub struct Login {
    name: String,
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    tls: crate::forwarded::OverTls,
    headers: axum::http::HeaderMap,
    Form(form): Form<Login>,
) -> Response {
    if session::is_cross_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "this login form was sent from another site; open the login page of this server and log in there",
        )
            .into_response();
    }
    let next = safe_next(form.next.as_deref());
    let known = match state.engine.store.user_for_login(&form.name).await {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    // An unknown name costs the same argon2 check as a known one, so answer
    // times do not tell which names exist.
    let matches = match &known {
        Some((_, hash)) => session::password_matches(&form.password, hash),
        None => {
            // The check runs for its cost; no password matches the dummy hash.
            let _ = session::password_matches(&form.password, session::dummy_hash());
            false
        }
    };
    let Some((user, _)) = known.filter(|_| matches) else {
        let problem = Some("unknown user or wrong password".to_string());
        return page(LoginPage { next, problem }, StatusCode::UNAUTHORIZED);
    };
    let (cookie, cookie_hash) = Token::generate();
    let (csrf, _) = Token::generate();
    let expires = slipway_store::now_ms() + LIFETIME_MS;
    if let Err(e) = state
        .engine
        .store
        .create_session(cookie_hash.as_str(), &user.name, &csrf, expires)
        .await
    {
        return fail(e);
    }
    (
        [session::set_cookie(&cookie, LIFETIME_MS / 1000, tls)],
        Redirect::to(&next),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct Csrf {
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    tls: crate::forwarded::OverTls,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    if let Err(refused) = viewer.check_csrf(&form.csrf) {
        return refused;
    }
    if let Some(cookie) = session::cookie(&headers, session::COOKIE) {
        let _ = state
            .engine
            .store
            .end_session(TokenHash::of(&cookie).as_str())
            .await;
    }
    ([session::set_cookie("", 0, tls)], Redirect::to("/ui/login")).into_response()
}

fn forbidden(viewer: &Viewer, role: Role) -> Response {
    (
        StatusCode::FORBIDDEN,
        format!(
            "this needs the {} role; {} has {}",
            role.as_str(),
            viewer.0.user.name,
            viewer.0.user.role
        ),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct TriggerForm {
    csrf: String,
    branch: String,
}

pub async fn trigger(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<TriggerForm>,
) -> Response {
    if let Err(refused) = viewer.check_csrf(&form.csrf) {
        return refused;
    }
    if !viewer.may(Role::Developer) {
        return forbidden(&viewer, Role::Developer);
    }
    let project = match project_of(&state, &name).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let target = slipway_engine::Target::Branch(form.branch.trim().to_string());
    let cause = slipway_store::RunCause {
        person: Some(viewer.0.user.name.clone()),
        pusher: None,
    };
    match state
        .engine
        .trigger_by(&project, target, "manual", cause)
        .await
    {
        Ok(run) => Redirect::to(&format!(
            "/ui/projects/{}/runs/{}",
            project.name, run.number
        ))
        .into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct DeployForm {
    csrf: String,
    version: Option<String>,
}

async fn ask(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
    env: &str,
    csrf: &str,
    request: slipway_deploy::Request,
) -> Response {
    if let Err(refused) = viewer.check_csrf(csrf) {
        return refused;
    }
    if !viewer.may(Role::Developer) {
        return forbidden(viewer, Role::Developer);
    }
    let project = match project_of(state, name).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match state
        .deployer
        .request(&project, env, request, &viewer.approver())
        .await
    {
        Ok(_) => Redirect::to(&format!("/ui/projects/{name}/environments/{env}")).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    }
}

pub async fn rollback(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, env)): Path<(String, String)>,
    Form(form): Form<DeployForm>,
) -> Response {
    ask(
        &state,
        &viewer,
        &name,
        &env,
        &form.csrf,
        slipway_deploy::Request::Rollback { to: None },
    )
    .await
}

pub async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, env)): Path<(String, String)>,
    Form(form): Form<DeployForm>,
) -> Response {
    let version = form.version.clone().unwrap_or_default();
    ask(
        &state,
        &viewer,
        &name,
        &env,
        &form.csrf,
        slipway_deploy::Request::Deploy { version },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<DecideForm>,
) -> Response {
    if let Err(refused) = viewer.check_csrf(&form.csrf) {
        return refused;
    }
    let approve = form.decision == "approve";
    match state
        .deployer
        .decide(id, &viewer.approver(), approve, &form.comment)
        .await
    {
        Ok(d) => {
            let project = state
                .engine
                .store
                .project_by_id(d.project_id)
                .await
                .map(|p| p.name)
                .unwrap_or_default();
            Redirect::to(&format!(
                "/ui/projects/{project}/environments/{}",
                d.environment
            ))
            .into_response()
        }
        Err(e) => (StatusCode::FORBIDDEN, e.to_string()).into_response(),
    }
}
