//! The artifact repository's management API: repositories, images,
//! promotion with its history, and garbage collection on demand.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_registry::{Digest, GcOptions, GcReport, RepoSpec};
use slipway_store::{NewPromotion, Promotion, RepoKind, Repository, TagPolicy};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{AsAdmin, AsDeveloper, AsViewer, Json, Path, Query};

pub async fn list(State(state): State<AppState>, _: AsViewer) -> ApiResult<Json<Vec<Repository>>> {
    Ok(Json(state.registry.store.repositories().await?))
}

pub async fn add(
    State(state): State<AppState>,
    _: AsAdmin,
    Json(spec): Json<RepoSpec>,
) -> ApiResult<(StatusCode, Json<Repository>)> {
    let repo = spec.check().map_err(invalid)?;
    let repo = state.registry.store.put_repository(&repo, false).await?;
    Ok((StatusCode::CREATED, Json(repo)))
}

pub async fn remove(
    State(state): State<AppState>,
    _: AsAdmin,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.registry.store.remove_repository(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A repository's images with their tags (digest and when each was set).
pub async fn images(
    State(state): State<AppState>,
    _: AsViewer,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let store = &state.registry.store;
    store
        .repository(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no repository named `{name}`")))?;
    let mut images = Vec::new();
    for (_, image) in store.images(Some(&name)).await? {
        let tags: Vec<Value> = store
            .tag_digests(&name, &image)
            .await?
            .into_iter()
            .map(|(tag, digest, at)| json!({ "tag": tag, "digest": digest, "updated_at": at }))
            .collect();
        images.push(json!({ "image": image, "tags": tags }));
    }
    Ok(Json(json!({ "repository": name, "images": images })))
}

#[derive(Debug, Deserialize)]
pub struct PromoteRequest {
    /// `REPOSITORY/IMAGE@sha256:…`
    source: String,
    to: String,
    tag: Option<String>,
    reason: Option<String>,
}

/// Promotion: by reference, no bytes copied. Developers may promote into a
/// release repository; that is how images get there without admin rights.
pub async fn promote(
    State(state): State<AppState>,
    crate::extract::Authorized(caller): AsDeveloper,
    Json(req): Json<PromoteRequest>,
) -> ApiResult<Json<Value>> {
    let (name, digest) = req.source.split_once('@').ok_or_else(|| {
        invalid(format!(
            "source `{}` must be REPOSITORY/IMAGE@sha256:…",
            req.source
        ))
    })?;
    let digest = Digest::parse(digest).map_err(|e| invalid(e.to_string()))?;
    let (from, image) = name
        .split_once('/')
        .ok_or_else(|| invalid(format!("`{name}` must be REPOSITORY/IMAGE")))?;
    let store = &state.registry.store;
    let target = store
        .repository(&req.to)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no repository named `{}`", req.to)))?;
    if target.kind != RepoKind::Oci {
        return Err(invalid(format!(
            "`{}` is not a hosted oci repository",
            req.to
        )));
    }
    if let Some(tag) = &req.tag {
        slipway_registry::valid_tag(tag).map_err(|e| invalid(e.to_string()))?;
    }
    let digest_text = digest.to_string();
    let changed = store
        .promote(&NewPromotion {
            image,
            digest: &digest_text,
            from_repo: from,
            to_repo: &req.to,
            tag: req.tag.as_deref(),
            reason: req.reason.as_deref(),
            by: &caller.name,
            immutable_tags: target.policy == TagPolicy::Release,
        })
        .await?;
    Ok(Json(json!({
        "image": format!("{}/{image}@{digest_text}", req.to),
        "tag": req.tag,
        "changed": changed,
    })))
}

#[derive(Debug, Deserialize)]
pub struct PromotionQuery {
    image: String,
    digest: Option<String>,
}

pub async fn promotions(
    State(state): State<AppState>,
    _: AsViewer,
    Query(q): Query<PromotionQuery>,
) -> ApiResult<Json<Vec<Promotion>>> {
    Ok(Json(
        state
            .registry
            .store
            .promotions(&q.image, q.digest.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct GcRequest {
    #[serde(default)]
    dry_run: bool,
    /// Blobs touched this recently are spared [default: one hour].
    grace_seconds: Option<u64>,
}

pub async fn gc(
    State(state): State<AppState>,
    _: AsAdmin,
    Json(req): Json<GcRequest>,
) -> ApiResult<Json<GcReport>> {
    let options = GcOptions {
        grace: Duration::from_secs(req.grace_seconds.unwrap_or(3600)),
        dry_run: req.dry_run,
    };
    let report = state
        .registry
        .collect_garbage(options)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
}
