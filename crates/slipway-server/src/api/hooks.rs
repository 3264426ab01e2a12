//! Push webhooks from GitHub, Gitea, Bitbucket Cloud and Bitbucket Data Center:
//! signature checked against the project's secret before anything else, one
//! run per pushed branch, redeliveries recognised by their delivery id.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use slipway_webhook::{WebhookError, verify_and_parse};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::{AppState, WEBHOOK_SECRET};

pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let store = &state.engine.store;
    // An unknown project answers like a bad signature: no probing for names.
    let project = store
        .project(&name)
        .await?
        .ok_or_else(|| ApiError::unauthorized("signature check failed"))?;
    let sealed = store
        .secret(project.id, WEBHOOK_SECRET)
        .await?
        .ok_or_else(|| ApiError::unauthorized("signature check failed"))?;
    let secret = state
        .open(project.id, WEBHOOK_SECRET, &sealed)
        .ok_or_else(|| ApiError::internal("cannot open the webhook secret"))?;
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let delivery = verify_and_parse(&pairs, &body, &secret).map_err(|e| match e {
        WebhookError::MissingSignature => ApiError::unauthorized("the delivery is not signed; set the webhook's secret to the one `slipway project add` printed"),
        WebhookError::BadSignature => ApiError::unauthorized("signature check failed"),
        other => ApiError::bad_request(other.to_string()),
    })?;
    if let Some(id) = &delivery.id
        && !store.first_delivery(project.id, id).await?
    {
        return Ok((
            StatusCode::OK,
            Json(json!({ "duplicate": true, "runs": [] })),
        ));
    }
    let mut runs = Vec::new();
    for push in delivery.pushes.iter().filter(|p| !p.deleted) {
        match state
            .engine
            .on_push(&project, &push.branch, &push.commit, "webhook")
            .await
        {
            Ok(Some(run)) => runs.push(run),
            Ok(None) => {}
            Err(e) => {
                // Not built: let the provider's redelivery try again.
                if let Some(id) = &delivery.id {
                    store.forget_delivery(project.id, id).await?;
                }
                return Err(e.into());
            }
        }
    }
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
