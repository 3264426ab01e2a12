//! Raw repositories over HTTP, Nexus-style: `PUT/GET/HEAD/DELETE
//! /raw/REPO/PATH`, a JSON listing for a directory (`/raw/REPO/DIR/`), and the
//! SHA-256 in `X-Checksum-Sha256` and `ETag`. Same credentials as `/v2/`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_registry::{Digest, RegistryError};
use slipway_store::RawFile;
use tokio_util::io::StreamReader;

use super::blobs::{empty, insert};
use super::{Action, OciError, RegistryCaller, base_url_of, file_body};
use crate::AppState;

pub async fn handle(
    State(state): State<AppState>,
    Path((repo, path)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let host = base_url_of(&headers);
    match serve(state, &repo, &path, method, headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response_at(&host),
    }
}

/// The repository's top directory (`/raw/REPO/`).
pub async fn top(
    State(state): State<AppState>,
    Path(repo): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(
        State(state),
        Path((repo, String::new())),
        method,
        headers,
        body,
    )
    .await
}

async fn serve(
    state: AppState,
    repo: &str,
    path: &str,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let caller = RegistryCaller::from_headers(&headers, &state).await?;
    let registry = &state.registry;
    let repository = registry.raw_repository(repo).await?;
    let action = match method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::PUT => Action::Push,
        Method::DELETE => Action::Delete,
        other => {
            return Err(OciError::unsupported(format!(
                "{other} is not supported on raw files"
            )));
        }
    };
    caller.require(&repository, repo, action)?;
    if action == Action::Pull && (path.is_empty() || path.ends_with('/')) {
        let entries = registry.raw_listing(repo, path).await?;
        return Ok(axum::Json(
            serde_json::json!({ "repository": repo, "path": path, "entries": entries }),
        )
        .into_response());
    }
    match method {
        Method::PUT => {
            let expected = headers
                .get("X-Checksum-Sha256")
                .and_then(|v| v.to_str().ok())
                .map(|hex| Digest::parse(&format!("sha256:{}", hex.trim())))
                .transpose()
                .map_err(RegistryError::from)?;
            let reader = StreamReader::new(futures_util::TryStreamExt::map_err(
                body.into_data_stream(),
                std::io::Error::other,
            ));
            let file = registry
                .put_raw(repo, path, reader, expected.as_ref())
                .await?;
            let mut response = empty(StatusCode::CREATED, &[]);
            checksum_headers(response.headers_mut(), &file);
            Ok(response)
        }
        Method::DELETE => {
            registry.delete_raw(repo, path).await?;
            Ok(empty(StatusCode::NO_CONTENT, &[]))
        }
        _ => {
            let file = registry.raw_file(repo, path).await?;
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                let digest = Digest::parse(&file.digest).map_err(RegistryError::from)?;
                let stored = registry.blobs.open(&digest).await.ok_or_else(|| {
                    OciError::from(RegistryError::BlobUnknown(format!(
                        "the content of `{path}` is missing"
                    )))
                })?;
                file_body(
                    stored.into_std().await,
                    0,
                    u64::try_from(file.size).unwrap_or(0),
                )
            };
            let mut response = Response::new(body);
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            checksum_headers(headers, &file);
            Ok(response)
        }
    }
}

fn checksum_headers(headers: &mut HeaderMap, file: &RawFile) {
    let hex = file.digest.trim_start_matches("sha256:");
    insert(headers, "X-Checksum-Sha256", hex);
    insert(headers, header::ETAG.as_str(), &format!("\"{hex}\""));
}
