//! The environment's stable URL: a reverse proxy on its own port that sends
//! each request to the version serving now. Switching versions swaps the
//! backend list; requests already on their way finish on the old one, which is
//! stopped only once they have (draining), so no request fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One running copy of a version, as the proxy sees it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    inflight: Arc<AtomicUsize>,
}

impl Backend {
    pub fn new(addr: SocketAddr) -> Backend {
        Backend {
            addr,
            inflight: Arc::default(),
        }
    }

    /// Waits until no request is on its way through this backend (at most `limit`).
    pub async fn drain(&self, limit: Duration) {
        let start = Instant::now();
        while self.inflight.load(Ordering::Acquire) > 0 && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Counts a request against its backend until the response body is done.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
pub struct Route {
    backends: RwLock<Vec<Backend>>,
    next: AtomicUsize,
}

impl Route {
    /// Sends every new request to `backends` from now on; returns the ones replaced.
    pub fn switch(&self, backends: Vec<Backend>) -> Vec<Backend> {
        let mut now = self.backends.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *now, backends)
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.backends().iter().map(|b| b.addr).collect()
    }

    pub fn backends(&self) -> Vec<Backend> {
        self.backends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A backend, round robin, already counted as busy. Counting happens under
    /// the read lock, so once `switch` returns every request that picked an
    /// old backend is visible to its drain.
    fn pick(&self) -> Option<(SocketAddr, InFlight)> {
        let backends = self.backends.read().unwrap_or_else(|e| e.into_inner());
        if backends.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % backends.len();
        let b = &backends[i];
        b.inflight.fetch_add(1, Ordering::AcqRel);
        Some((b.addr, InFlight(b.inflight.clone())))
    }
}

/// A listening environment proxy.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub route: Arc<Route>,
    pub addr: SocketAddr,
}

#[derive(Clone)]
struct Forward {
    route: Arc<Route>,
    client: reqwest::Client,
}

impl Proxy {
    /// Listens on `addr` (port 0 picks one) until `stop`.
    pub async fn start(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let route = Arc::new(Route::default());
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(std::io::Error::other)?;
        let state = Forward {
            route: route.clone(),
            client,
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!("environment proxy on {addr} stopped: {e}");
            }
        });
        Ok(Proxy { route, addr })
    }
}

const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for h in &HOP_BY_HOP {
        out.remove(h);
    }
    out.remove("keep-alive");
    out
}

async fn forward(State(fwd): State<Forward>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let headers = end_to_end(&parts.headers);
    // A request without a body can be tried again on the next backend when
    // the connection itself fails (a version stopping under us); one with a
    // body cannot, since it has been consumed.
    let replayable =
        parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    let mut body = Some(body);
    for attempt in 0..3 {
        let Some((addr, guard)) = fwd.route.pick() else {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "no version of this environment is running",
            )
                .into_response();
        };
        let mut out = fwd
            .client
            .request(parts.method.clone(), format!("http://{addr}{path}"))
            .headers(headers.clone());
        if let Some(b) = body.take().filter(|_| !replayable) {
            out = out.body(reqwest::Body::wrap_stream(b.into_data_stream()));
        }
        match out.send().await {
            Ok(resp) => return relay(resp, guard),
            Err(e) if replayable && attempt < 2 && e.is_connect() => continue,
            Err(e) => {
                return (
                    StatusCode::BAD_GATEWAY,
                    format!("the version at {addr} did not answer: {e}"),
                )
                    .into_response();
            }
        }
    }
    (StatusCode::BAD_GATEWAY, "no version answered").into_response()
}

fn relay(resp: reqwest::Response, guard: InFlight) -> Response {
    let status = resp.status();
    let headers = end_to_end(resp.headers());
    let stream = resp.bytes_stream().map_ok(move |chunk| {
        // The guard lives as long as the body: the backend counts as busy until it is sent.
        let _busy = &guard;
        chunk
    });
    let mut out = Response::new(Body::from_stream(stream));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}
