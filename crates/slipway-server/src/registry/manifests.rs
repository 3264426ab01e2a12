//! Manifests, tags, referrers and the catalog.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use slipway_registry::manifest::{MAX_MANIFEST_BYTES, OCI_INDEX};
use slipway_registry::{Registry, RegistryError};
use slipway_store::{ManifestRecord, RepoKind};

use super::blobs::{empty, insert};
use super::{Action, OciError, Request};

/// Tags per page when the client does not say.
const DEFAULT_PAGE: i64 = 1000;

pub async fn get(req: Request, name: &str, reference: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Pull).await?;
    let registry = &req.state.registry;
    let record = if repo.kind == RepoKind::OciProxy {
        registry.proxied_manifest(&repo, &image, reference).await?
    } else {
        registry.manifest(&repo.name, &image, reference).await?
    };
    let bytes = registry.manifest_bytes(&record).await?;
    let body = if req.method == axum::http::Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes.clone())
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    insert(headers, header::CONTENT_TYPE.as_str(), &record.media_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    insert(headers, "Docker-Content-Digest", &record.digest);
    insert(
        headers,
        header::ETAG.as_str(),
        &format!("\"{}\"", record.digest),
    );
    Ok(response)
}

pub async fn put(req: Request, name: &str, reference: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Push).await?;
    Registry::require_hosted(&repo)?;
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(req.take_body(), MAX_MANIFEST_BYTES + 1)
        .await
        .map_err(|_| OciError::from(RegistryError::ManifestTooLarge(MAX_MANIFEST_BYTES + 1)))?;
    let pushed = req
        .state
        .registry
        .put_manifest(&repo, &image, reference, content_type.as_deref(), bytes)
        .await?;
    let mut headers = vec![
        (
            "Location",
            format!("/v2/{name}/manifests/{}", pushed.digest),
        ),
        ("Docker-Content-Digest", pushed.digest.to_string()),
    ];
    if let Some(subject) = pushed.subject {
        headers.push(("OCI-Subject", subject.to_string()));
    }
    Ok(empty(StatusCode::CREATED, &headers))
}

pub async fn delete(req: Request, name: &str, reference: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Delete).await?;
    req.state
        .registry
        .delete_manifest(&repo.name, &image, reference)
        .await?;
    Ok(empty(StatusCode::ACCEPTED, &[]))
}

/// `GET …/tags/list?n=&last=`: lexical order, with a `Link` to the next page.
pub async fn tags(req: Request, name: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Pull).await?;
    let limit = match req.query("n") {
        Some(n) => n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            OciError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("n=`{n}` is not a non-negative number"),
            )
        })?,
        None => DEFAULT_PAGE,
    };
    let page = req
        .state
        .registry
        .store
        .tags(&repo.name, &image, req.query("last"), limit)
        .await
        .map_err(RegistryError::from)?;
    let mut response = (
        StatusCode::OK,
        axum::Json(json!({ "name": name, "tags": page.tags })),
    )
        .into_response();
    if let (true, Some(last)) = (page.more, page.tags.last()) {
        insert(
            response.headers_mut(),
            header::LINK.as_str(),
            &format!("</v2/{name}/tags/list?n={limit}&last={last}>; rel=\"next\""),
        );
    }
    Ok(response)
}

/// `GET …/referrers/DIGEST[?artifactType=]`: an image index of the manifests whose subject it is.
pub async fn referrers(req: Request, name: &str, digest: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Pull).await?;
    slipway_registry::Digest::parse(digest).map_err(RegistryError::from)?;
    let filter = req.query("artifactType").filter(|t| !t.is_empty());
    let found = req
        .state
        .registry
        .store
        .referrers(&repo.name, &image, digest, filter)
        .await
        .map_err(RegistryError::from)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": found.iter().map(descriptor).collect::<Vec<_>>(),
    });
    let mut response = (StatusCode::OK, index.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        headers.insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

fn descriptor(m: &ManifestRecord) -> Value {
    let mut d = json!({ "mediaType": m.media_type, "digest": m.digest, "size": m.size });
    if let Some(t) = &m.artifact_type {
        d["artifactType"] = json!(t);
    }
    if let Some(a) = m
        .annotations
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
    {
        d["annotations"] = a;
    }
    d
}

/// `GET /v2/_catalog`: every image the caller may pull.
pub async fn catalog(req: Request) -> Result<Response, OciError> {
    let store = &req.state.registry.store;
    let repos: std::collections::HashMap<String, slipway_store::Repository> = store
        .repositories()
        .await
        .map_err(RegistryError::from)?
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let names: Vec<String> = store
        .images(None)
        .await
        .map_err(RegistryError::from)?
        .into_iter()
        .map(|(repo, image)| (format!("{repo}/{image}"), repo))
        .filter(|(name, repo)| {
            repos
                .get(repo)
                .is_some_and(|r| req.caller.require(r, name, Action::Pull).is_ok())
        })
        .map(|(name, _)| name)
        .collect();
    Ok((StatusCode::OK, axum::Json(json!({ "repositories": names }))).into_response())
}
