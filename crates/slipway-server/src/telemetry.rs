//! Prometheus metrics at `/metrics`: HTTP latency by route (recorded as
//! requests pass), and the state of runs, jobs, deployments and the registry
//! (read from the store when scraped, so they are right after a restart and
//! across several servers).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;
use crate::error::ApiResult;

const HTTP_SECONDS: &str = "slipway_http_request_duration_seconds";
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The process's recorder, installed once (a process may build several servers in tests).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_SECONDS.into()), BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Another recorder may be installed already (embedding); ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Times every routed request, labelled by its route template, method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()))
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_SECONDS, "route" => route, "method" => method, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the Prometheus text format.
pub async fn scrape(State(state): State<AppState>) -> ApiResult<Response> {
    let handle = handle();
    let counts = state.engine.store.counts().await?;
    // Every known state is set, so one that empties reads 0, not its last count.
    let run_states = slipway_store::State::ALL.map(slipway_store::State::as_str);
    set_by_state("slipway_runs", "state", &run_states, &counts.runs);
    set_by_state("slipway_jobs", "state", &run_states, &counts.jobs);
    let queued = counts
        .jobs
        .iter()
        .find(|(s, _)| s == "queued")
        .map_or(0, |(_, n)| *n);
    metrics::gauge!("slipway_queue_depth").set(queued as f64);
    let results = slipway_store::DeployState::ALL.map(slipway_store::DeployState::as_str);
    set_by_state(
        "slipway_deployments",
        "result",
        &results,
        &counts.deployments,
    );
    metrics::gauge!("slipway_registry_stored_bytes").set(counts.registry_bytes as f64);
    let text = handle.render();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

fn set_by_state(name: &'static str, label: &'static str, known: &[&str], counts: &[(String, i64)]) {
    for state in known {
        let n = counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(name, label => state.to_string()).set(n as f64);
    }
}

/// `/projects/{project}/runs` → `/projects/:project/runs`: braces in label
/// values are valid Prometheus but trip up common text parsers.
fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_labels_name_parameters_with_a_colon() {
        assert_eq!(
            super::route_label("/api/v1/projects/{project}/runs/{number}"),
            "/api/v1/projects/:project/runs/:number"
        );
    }
}
