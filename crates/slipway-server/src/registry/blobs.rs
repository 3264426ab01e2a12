//! Blobs and uploads: HEAD/GET with ranges, DELETE; monolithic, POST-PUT and
//! chunked uploads; cross-repository mounts.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use slipway_registry::{Digest, Registry, RegistryError};
use slipway_store::RepoKind;

use super::{Action, OciError, Request, file_body, range_header};

fn digest_of(text: &str) -> Result<Digest, OciError> {
    Ok(Digest::parse(text).map_err(RegistryError::from)?)
}

pub async fn get(req: Request, name: &str, digest: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Pull).await?;
    let digest = digest_of(digest)?;
    let registry = &req.state.registry;
    let size = if repo.kind == RepoKind::OciProxy {
        registry.proxied_blob(&repo, &image, &digest).await?
    } else {
        registry.blob_size(&repo.name, &image, &digest).await?
    };
    if req.method == axum::http::Method::HEAD {
        // A client checking before it pushes is about to reference this blob.
        registry
            .store
            .touch_blob(&digest.to_string())
            .await
            .map_err(RegistryError::from)?;
        return Ok(blob_response(
            StatusCode::OK,
            &digest,
            size,
            None,
            Body::empty(),
        ));
    }
    let range = match requested_range(&req.headers, size) {
        Ok(range) => range,
        Err(()) => {
            let mut response = OciError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UNKNOWN",
                format!("the requested range is outside the blob's {size} bytes"),
            )
            .into_response_at("");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let file = registry.blobs.open(&digest).await.ok_or_else(|| {
        OciError::from(RegistryError::BlobUnknown(format!(
            "{name} has no blob {digest}"
        )))
    })?;
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let body = file_body(file.into_std().await, start, length);
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Ok(blob_response(
        status,
        &digest,
        length,
        range.map(|r| (r, size)),
        body,
    ))
}

fn blob_response(
    status: StatusCode,
    digest: &Digest,
    length: u64,
    range: Option<((u64, u64), u64)>,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert(headers, "Docker-Content-Digest", &digest.to_string());
    insert(headers, header::ETAG.as_str(), &format!("\"{digest}\""));
    if let Some(((start, end), size)) = range {
        insert(
            headers,
            header::CONTENT_RANGE.as_str(),
            &format!("bytes {start}-{end}/{size}"),
        );
    }
    response
}

/// A single `bytes=` range, clamped to the blob; `Err` when it cannot be satisfied.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            (size.saturating_sub(n), size.checked_sub(1).ok_or(())?)
        }
        (first, "") => (
            first.parse().map_err(|_| ())?,
            size.checked_sub(1).ok_or(())?,
        ),
        (first, last) => {
            let last: u64 = last.parse().map_err(|_| ())?;
            (
                first.parse().map_err(|_| ())?,
                last.min(size.saturating_sub(1)),
            )
        }
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub async fn delete(req: Request, name: &str, digest: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Delete).await?;
    let digest = digest_of(digest)?;
    let removed = req
        .state
        .registry
        .store
        .unlink_blob(&repo.name, &image, &digest.to_string())
        .await
        .map_err(RegistryError::from)?;
    if !removed {
        return Err(RegistryError::BlobUnknown(format!("{name} has no blob {digest}")).into());
    }
    Ok(empty(StatusCode::ACCEPTED, &[]))
}

/// `POST …/blobs/uploads/`: a mount, a monolithic upload (`?digest=`), or a new session.
pub async fn start(req: Request, name: &str) -> Result<Response, OciError> {
    // A mount also reads its source: the challenge asks for pull there too.
    let mount = req.query("mount").zip(req.query("from"));
    let source_scope = mount.map(|(_, from)| super::auth::scope(from, "pull"));
    let (repo, image) = req
        .target(name, Action::Push)
        .await
        .map_err(|e| e.also_asking(source_scope.clone()))?;
    Registry::require_hosted(&repo)?;
    let registry = req.state.registry.clone();
    if let Some((mount, from)) = mount {
        let digest = digest_of(mount)?;
        // Mounting reads from `from`: the caller must be allowed to pull
        // there. A token that only lacks the scope is sent for a wider one;
        // any other refusal falls back to a plain upload, as the spec allows.
        let source = match req.target(from, Action::Pull).await {
            Err(e) if e.insufficient_scope => {
                return Err(OciError::insufficient_scope(
                    from,
                    "pull",
                    super::auth::scope(name, "pull,push"),
                )
                .also_asking(source_scope));
            }
            source => source,
        };
        if let Ok((from_repo, from_image)) = source {
            let mounted = registry
                .store
                .mount_blob(
                    (&from_repo.name, &from_image),
                    (&repo.name, &image),
                    &digest.to_string(),
                )
                .await
                .map_err(RegistryError::from)?;
            if mounted {
                return Ok(created_blob(name, &digest));
            }
        }
    }
    let id = registry.start_upload(&repo.name, &image).await?;
    if let Some(digest) = req.query("digest") {
        let digest = digest_of(digest)?;
        registry
            .finish(
                &id,
                &repo.name,
                &image,
                &digest,
                req.take_body().into_data_stream(),
            )
            .await?;
        return Ok(created_blob(name, &digest));
    }
    Ok(upload_progress(StatusCode::ACCEPTED, name, &id, 0))
}

pub async fn status(req: Request, name: &str, id: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Push).await?;
    let offset = req
        .state
        .registry
        .upload_offset(id, &repo.name, &image)
        .await?;
    Ok(upload_progress(StatusCode::NO_CONTENT, name, id, offset))
}

/// `PATCH`: a chunk; with `Content-Range: START-END` it must start where the upload ends.
pub async fn patch(req: Request, name: &str, id: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Push).await?;
    let start = match req
        .headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(range) => Some(content_range_start(range).ok_or_else(|| {
            OciError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("Content-Range `{range}` is not START-END"),
            )
        })?),
    };
    let offset = req
        .state
        .registry
        .append(
            id,
            &repo.name,
            &image,
            start,
            req.take_body().into_data_stream(),
        )
        .await?;
    Ok(upload_progress(StatusCode::ACCEPTED, name, id, offset))
}

fn content_range_start(range: &str) -> Option<u64> {
    let range = range
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches([' ', '=']);
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.split('/').next()?.trim().parse().ok()?;
    (end >= start).then_some(start)
}

/// `PUT ?digest=`: the last bytes (if any), verified; the blob is then stored.
pub async fn finish(req: Request, name: &str, id: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Push).await?;
    let digest = req.query("digest").ok_or_else(|| {
        OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "finishing an upload needs ?digest=sha256:… of the whole blob",
        )
    })?;
    let digest = digest_of(digest)?;
    req.state
        .registry
        .finish(
            id,
            &repo.name,
            &image,
            &digest,
            req.take_body().into_data_stream(),
        )
        .await?;
    Ok(created_blob(name, &digest))
}

pub async fn cancel(req: Request, name: &str, id: &str) -> Result<Response, OciError> {
    let (repo, image) = req.target(name, Action::Push).await?;
    req.state
        .registry
        .cancel_upload(id, &repo.name, &image)
        .await?;
    Ok(empty(StatusCode::NO_CONTENT, &[]))
}

fn created_blob(name: &str, digest: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{name}/blobs/{digest}")),
            ("Docker-Content-Digest", digest.to_string()),
        ],
    )
}

fn upload_progress(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    empty(
        status,
        &[
            ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
            ("Range", range_header(offset)),
            ("Docker-Upload-UUID", id.to_string()),
        ],
    )
}

pub fn empty(status: StatusCode, headers: &[(&str, String)]) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    for (name, value) in headers {
        insert(map, name, value);
    }
    response
}

pub fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        axum::http::HeaderName::try_from(name),
        HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).expect("header"));
        requested_range(&headers, size)
    }

    #[test]
    fn reads_byte_ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=9-3", 100), Err(()));
        assert_eq!(content_range_start("0-99"), Some(0));
        assert_eq!(content_range_start("bytes 100-199/*"), Some(100));
        assert_eq!(content_range_start("x"), None);
    }
}
