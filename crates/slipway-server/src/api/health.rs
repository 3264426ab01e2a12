//! Liveness and readiness for orchestrators and load balancers.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// The process answers.
pub async fn live() -> &'static str {
    "ok"
}

/// The database answers and its migrations are applied (they run before the
/// server listens, so a reachable store means both).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.engine.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}
