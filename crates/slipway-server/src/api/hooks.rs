//! Push webhooks from GitHub, Gitea, Bitbucket Cloud and Bitbucket Data Center:
//! signature checked against the project's secret before anything else, one
//! run per pushed branch, redeliveries recognised by their delivery id.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use slipway_store::{Project, Run};
use slipway_webhook::{Delivery, WebhookError, verify_and_parse};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::{AppState, WEBHOOK_SECRET};

/// The one answer to a delivery whose signature does not hold, for any reason.
const REFUSED: &str = "signature check failed: sign the delivery with the webhook secret `slipway project add` \
     printed for this project (X-Hub-Signature-256, X-Gitea-Signature or X-Hub-Signature)";

/// A fresh random key: what a delivery for a project without a secret is
/// checked against, so it costs the same HMAC and fails the same way.
fn unknown_secret() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    // Without randomness the key is zeros: still a key no forge signs with,
    // since a project with no secret never verifies (checked above).
    let _ = getrandom::fill(&mut key);
    key
}

pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let store = &state.engine.store;
    let (project, delivery) = verified(&state, &name, &headers, &body).await?;
    if let Some(id) = &delivery.id
        && !store.first_delivery(project.id, id).await?
    {
        return Ok((
            StatusCode::OK,
            Json(json!({ "duplicate": true, "runs": [] })),
        ));
    }
    let runs = start_runs(&state, &project, &delivery).await?;
    if let Some(id) = &delivery.id {
        store
            .delivery_runs(
                project.id,
                id,
                &runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            )
            .await?;
    }
    let numbers: Vec<i64> = runs.iter().map(|r| r.number).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "event": delivery.event, "runs": numbers })),
    ))
}

/// The project named in the path and its delivery, once the signature holds.
/// Until then every answer is the same whether the project exists, has a
/// secret, or not: no probing for names.
async fn verified(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<(Project, Delivery)> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let project = state.engine.store.project(name).await?;
    let secret = match &project {
        Some(p) => webhook_secret(state, p).await?,
        None => None,
    };
    // Without a project, check against a secret nobody has: the same work,
    // the same refusal.
    let key = secret.clone().unwrap_or_else(unknown_secret);
    match (project, secret, verify_and_parse(&pairs, body, &key)) {
        (Some(project), Some(_), Ok(delivery)) => Ok((project, delivery)),
        (_, _, Err(e @ (WebhookError::UnknownProvider | WebhookError::Payload(_)))) => {
            Err(ApiError::bad_request(e.to_string()))
        }
        _ => Err(ApiError::unauthorized(REFUSED)),
    }
}

/// The project's webhook secret, opened; `None` when it has none.
async fn webhook_secret(state: &AppState, project: &Project) -> ApiResult<Option<Vec<u8>>> {
    let Some(sealed) = state
        .engine
        .store
        .secret(project.id, WEBHOOK_SECRET)
        .await?
    else {
        return Ok(None);
    };
    state
        .open(project.id, WEBHOOK_SECRET, &sealed)
        .map(Some)
        .ok_or_else(|| ApiError::internal("cannot open the webhook secret"))
}

/// One run per pushed branch that builds (deleted branches and commits
/// already built make none). When one cannot start, the delivery is
/// forgotten so the provider's redelivery tries again.
async fn start_runs(
    state: &AppState,
    project: &Project,
    delivery: &Delivery,
) -> ApiResult<Vec<Run>> {
    let cause = pusher_cause(state, delivery).await?;
    let mut runs = Vec::new();
    for push in delivery.pushes.iter().filter(|p| !p.deleted) {
        let started = state
            .engine
            .on_push(
                project,
                slipway_engine::Pushed {
                    branch: &push.branch,
                    commit: &push.commit,
                    before: push.before.as_deref(),
                },
                "webhook",
                cause.clone(),
            )
            .await;
        match started {
            Ok(run) => runs.extend(run),
            Err(e) => {
                if let Some(id) = &delivery.id {
                    state.engine.store.forget_delivery(project.id, id).await?;
                }
                return Err(e.into());
            }
        }
    }
    Ok(runs)
}

/// Who caused the runs of a push: the pusher as the forge reports them (its
/// signature says the forge sent this, so it is the forge's account data),
/// and the person with the pusher's email when Slipway has one. Best effort:
/// a forge account without a public email matches nobody by email, and
/// four-eyes then compares the pusher's login and name with approvers' names.
async fn pusher_cause(state: &AppState, delivery: &Delivery) -> ApiResult<slipway_store::RunCause> {
    let Some(pusher) = &delivery.pusher else {
        return Ok(slipway_store::RunCause::default());
    };
    let person = match &pusher.email {
        Some(email) => state
            .engine
            .store
            .user_by_email(email)
            .await?
            .map(|u| u.name),
        None => None,
    };
    Ok(slipway_store::RunCause {
        person,
        pusher: Some(slipway_store::Pusher {
            forge: delivery.provider.to_string(),
            login: pusher.login.clone(),
            name: pusher.name.clone(),
            email: pusher.email.clone(),
        }),
    })
}
