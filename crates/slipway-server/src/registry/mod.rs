//! The OCI Distribution API (v1.1) under `/v2/`, over `slipway-registry`.
//!
//! Image names are `REPOSITORY/IMAGE…`: the first component picks the
//! Slipway repository (with its policy and access), the rest names the image.
//! Names contain slashes, so one handler takes every `/v2/` path and reads the
//! route from its end, as the spec's grammar does.

mod auth;
mod blobs;
mod error;
mod manifests;
mod raw;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use slipway_registry::valid_image;
use slipway_store::Repository;

pub use auth::{Action, RegistryCaller, job_token, pull_token, push_allowed};
pub use error::OciError;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        // GET only: containerd first POSTs an OAuth form and falls back to GET on 405.
        .route("/v2/token", axum::routing::get(token))
        .route("/v2/{*rest}", any(dispatch))
        .route("/raw/{repo}", any(raw::top))
        .route("/raw/{repo}/", any(raw::top))
        .route("/raw/{repo}/{*path}", any(raw::handle))
        .layer(axum::middleware::map_response(api_version))
}

/// Every registry answer names the API version (docker checks it on `/v2/`).
async fn api_version(mut response: Response) -> Response {
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// A `/v2/` path, read from its end.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn route<'a>(path: &'a str) -> Option<Route<'a>> {
    if path == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = path.strip_suffix("/blobs/uploads") {
        return Some(Route::Uploads(name));
    }
    for (marker, make) in [
        (
            "/blobs/uploads/",
            Route::Upload as fn(&'a str, &'a str) -> Route<'a>,
        ),
        ("/manifests/", Route::Manifest),
        ("/blobs/", Route::Blob),
        ("/referrers/", Route::Referrers),
    ] {
        if let Some(at) = path.rfind(marker) {
            let (name, last) = (&path[..at], &path[at + marker.len()..]);
            if last.contains('/') {
                continue;
            }
            return Some(match make(name, last) {
                Route::Upload(name, "") => Route::Uploads(name),
                other => other,
            });
        }
    }
    None
}

/// What every handler gets: state, the caller and the request's parts.
pub struct Request {
    pub state: AppState,
    pub caller: RegistryCaller,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    /// In a mutex only so that `&Request` is `Send` across awaits (a body is not `Sync`).
    body: std::sync::Mutex<Option<Body>>,
}

impl Request {
    /// The request's body (once).
    pub fn take_body(&self) -> Body {
        self.body
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The repository and image of `name`, with the caller checked for `action`.
    pub async fn target(
        &self,
        name: &str,
        action: Action,
    ) -> Result<(Repository, String), OciError> {
        let (repo_name, image) = name.split_once('/').ok_or_else(|| {
            OciError::name_invalid(format!(
                "`{name}` names no image: use REPOSITORY/IMAGE (for example ci/{name})"
            ))
        })?;
        if !valid_image(image) {
            return Err(OciError::name_invalid(format!(
                "`{image}` is not a valid image name: lowercase letters, digits and `._-` between slashes"
            )));
        }
        let repo = self.state.registry.oci_repository(repo_name).await?;
        self.caller
            .require(&repo, name, action)
            .map_err(|e| self.widen_probe(e, name, action))?;
        Ok((repo, image.to_string()))
    }

    /// A HEAD is how every client starts a push (does the blob or manifest
    /// exist yet?), so its challenge names `pull,push`: oras-py fetches one
    /// token per repository at the first challenge and reuses it for the
    /// upload. `/v2/token` still grants only what the caller's role allows.
    fn widen_probe(&self, e: OciError, name: &str, action: Action) -> OciError {
        if self.method == Method::HEAD && action == Action::Pull && e.is_challenge() {
            OciError {
                scope: Some(auth::scope(name, "pull,push")),
                ..e
            }
        } else {
            e
        }
    }
}

async fn base(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = base_url_of(&headers);
    match RegistryCaller::from_headers(&headers, &state).await {
        Ok(caller) if !caller.is_anonymous() => {
            (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()
        }
        Ok(_) => OciError::unauthorized("log in with a Slipway API token as the password")
            .into_response_at(&host),
        Err(e) => e.into_response_at(&host),
    }
}

async fn token(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let host = base_url_of(&headers);
    let scopes: Vec<String> = parse_query(&uri)
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    let issued = async {
        let caller = RegistryCaller::from_headers(&headers, &state).await?;
        auth::issue(&state, &caller, &scopes).await
    };
    match issued.await {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => e.into_response_at(&host),
    }
}

async fn dispatch(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let host = base_url_of(&headers);
    let result = async {
        let caller = RegistryCaller::from_headers(&headers, &state).await?;
        let route = route(&rest).ok_or_else(|| {
            OciError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("no registry route /v2/{rest}"),
            )
        })?;
        let request = Request {
            state,
            caller,
            method,
            headers,
            query: parse_query(&uri),
            body: std::sync::Mutex::new(Some(body)),
        };
        handle(route, request).await
    };
    match result.await {
        Ok(response) => response,
        Err(e) => e.into_response_at(&host),
    }
}

async fn handle(route: Route<'_>, request: Request) -> Result<Response, OciError> {
    use Method as M;
    let method = request.method.clone();
    match (route, method) {
        (Route::Catalog, M::GET) => manifests::catalog(request).await,
        (Route::Tags(name), M::GET) => manifests::tags(request, name).await,
        (Route::Manifest(name, reference), M::GET | M::HEAD) => {
            manifests::get(request, name, reference).await
        }
        (Route::Manifest(name, reference), M::PUT) => {
            manifests::put(request, name, reference).await
        }
        (Route::Manifest(name, reference), M::DELETE) => {
            manifests::delete(request, name, reference).await
        }
        (Route::Referrers(name, digest), M::GET) => {
            manifests::referrers(request, name, digest).await
        }
        (Route::Blob(name, digest), M::GET | M::HEAD) => blobs::get(request, name, digest).await,
        (Route::Blob(name, digest), M::DELETE) => blobs::delete(request, name, digest).await,
        (Route::Uploads(name), M::POST) => blobs::start(request, name).await,
        (Route::Upload(name, id), M::GET) => blobs::status(request, name, id).await,
        (Route::Upload(name, id), M::PATCH) => blobs::patch(request, name, id).await,
        (Route::Upload(name, id), M::PUT) => blobs::finish(request, name, id).await,
        (Route::Upload(name, id), M::DELETE) => blobs::cancel(request, name, id).await,
        (_, method) => Err(OciError::unsupported(format!(
            "{method} is not supported on this path"
        ))),
    }
}

/// Query pairs, decoded; a query that cannot be read counts as none.
fn parse_query(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
}

/// This server as the client reached it (`http://HOST`), for the token
/// challenge's realm; `X-Forwarded-Proto: https` from a TLS proxy is honoured.
pub(crate) fn base_url_of(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// How much is read from disk at a time while a blob streams out.
const READ_CHUNK: u64 = 256 * 1024;

/// A body of `length` bytes of `file` from `start`.
///
/// Each chunk is read on the task that writes it to the socket, inside
/// `block_in_place` (a read that has to wait for the disk hands the worker's
/// other tasks to another thread). Measured on 1 GiB from the page cache, this
/// is about a third faster than reading on the blocking pool and handing
/// chunks over a channel: the bytes are still in this core's cache when
/// they are written.
pub fn file_body(file: std::fs::File, start: u64, length: u64) -> Body {
    use std::io::{Read as _, Seek as _};
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let read = move |file: &mut std::fs::File, n: u64, at: Option<u64>| {
        let mut read = || -> std::io::Result<bytes::Bytes> {
            if let Some(at) = at {
                file.seek(std::io::SeekFrom::Start(at))?;
            }
            let mut chunk = Vec::with_capacity(n as usize);
            if file.take(n).read_to_end(&mut chunk)? as u64 != n {
                return Err(std::io::Error::other("the blob is shorter than recorded"));
            }
            Ok(bytes::Bytes::from(chunk))
        };
        if multi_thread {
            tokio::task::block_in_place(read)
        } else {
            read()
        }
    };
    let state = (file, length, Some(start));
    Body::from_stream(futures_util::stream::unfold(
        state,
        move |(mut file, left, seek)| async move {
            if left == 0 {
                return None;
            }
            let n = left.min(READ_CHUNK);
            match read(&mut file, n, seek) {
                Ok(chunk) => Some((Ok(chunk), (file, left - n, None))),
                // Stop after reporting the error: the client sees a cut body.
                Err(e) => Some((Err(e), (file, 0, None))),
            }
        },
    ))
}

/// `0-<last byte>` as upload responses report progress.
pub fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_routes_from_the_end_of_the_path() {
        assert_eq!(route("_catalog"), Some(Route::Catalog));
        assert_eq!(route("ci/a/b/tags/list"), Some(Route::Tags("ci/a/b")));
        assert_eq!(
            route("ci/app/manifests/v1"),
            Some(Route::Manifest("ci/app", "v1"))
        );
        assert_eq!(
            route("ci/app/blobs/sha256:ab"),
            Some(Route::Blob("ci/app", "sha256:ab"))
        );
        assert_eq!(
            route("ci/app/blobs/uploads/"),
            Some(Route::Uploads("ci/app"))
        );
        assert_eq!(
            route("ci/app/blobs/uploads"),
            Some(Route::Uploads("ci/app"))
        );
        assert_eq!(
            route("ci/app/blobs/uploads/abc"),
            Some(Route::Upload("ci/app", "abc"))
        );
        assert_eq!(
            route("ci/manifests/x/referrers/sha256:1"),
            Some(Route::Referrers("ci/manifests/x", "sha256:1"))
        );
        // An image may itself be called `blobs`.
        assert_eq!(
            route("ci/blobs/manifests/1"),
            Some(Route::Manifest("ci/blobs", "1"))
        );
        assert_eq!(route("ci/app"), None);
    }

    #[test]
    fn decodes_query_values() {
        let uri: Uri = "/v2/token?scope=repository%3Aci%2Fa%3Apull&n=2"
            .parse()
            .expect("uri");
        assert_eq!(
            parse_query(&uri),
            vec![
                ("scope".into(), "repository:ci/a:pull".into()),
                ("n".into(), "2".into())
            ]
        );
    }
}
