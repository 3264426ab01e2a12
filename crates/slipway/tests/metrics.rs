//! Delivery metrics over real runs and deployments: the Prometheus text at
//! `/metrics` (parsed with a Prometheus parser) and the DORA figures of the API.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{Remote, ServerProcess};
use common::service::{environment, status, succeeded};

/// A one-job pipeline whose release a Python file server stands in for.
const PIPELINE: &str = r#"jobs:
  page:
    steps:
      - echo ok > index.html
    artifacts: [index.html]
environments:
  prod:
    branch: main
    production: true
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
"#;

#[test]
fn prometheus_series_and_dora_figures_come_from_what_happened() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), PIPELINE);
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    succeeded(&server.cli(&[
        "project",
        "add",
        "web",
        "--git",
        remote.bare.to_str().expect("utf8"),
    ]));
    succeeded(&server.cli(&["trigger", "web", "--branch", "main", "--wait"]));
    server.wait_until("prod is live", Duration::from_secs(30), || {
        !environment(&status(&server, "web"), "prod")["live"].is_null()
    });

    let scraped = Command::new("curl")
        .args(["-sf", &format!("{}/metrics", server.url)])
        .output()
        .expect("curl");
    assert!(scraped.status.success(), "GET /metrics");
    let text = String::from_utf8_lossy(&scraped.stdout).to_string();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| {
        parsed
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {name} {label:?} in\n{text}"))
    };
    let number = |v: prometheus_parse::Value| match v {
        prometheus_parse::Value::Gauge(n)
        | prometheus_parse::Value::Counter(n)
        | prometheus_parse::Value::Untyped(n) => n,
        other => panic!("not a number: {other:?}"),
    };
    assert_eq!(
        number(value("slipway_runs", Some(("state", "succeeded")))),
        1.0
    );
    assert_eq!(
        number(value("slipway_jobs", Some(("state", "succeeded")))),
        1.0
    );
    assert_eq!(number(value("slipway_queue_depth", None)), 0.0);
    assert_eq!(
        number(value("slipway_deployments", Some(("result", "succeeded")))),
        1.0
    );
    assert_eq!(number(value("slipway_registry_stored_bytes", None)), 0.0);
    // A state with nothing in it reads 0 rather than missing or stale.
    assert_eq!(
        number(value("slipway_jobs", Some(("state", "running")))),
        0.0
    );
    assert_eq!(
        number(value("slipway_deployments", Some(("result", "deploying")))),
        0.0
    );
    // The CLI's calls went through the API: their latency is there by route.
    match value(
        "slipway_http_request_duration_seconds",
        Some(("route", "/api/v1/projects/:project/status")),
    ) {
        prometheus_parse::Value::Histogram(buckets) => {
            let all = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert!(all >= 1.0, "{buckets:?}");
        }
        other => panic!("a histogram, not {other:?}"),
    }

    // The DORA figures of prod: one deployment of a release, nothing failed.
    let figures = server.json_api("/api/v1/projects/web/metrics?days=1");
    assert_eq!(figures["environment"], "prod");
    assert_eq!(figures["deployment_frequency"]["deployments"], 1);
    assert_eq!(figures["change_failure_rate"]["failures"], 0);
    assert_eq!(figures["change_failure_rate"]["rate"], 0.0);
    assert_eq!(figures["lead_time_seconds"]["count"], 1);
    assert!(
        figures["lead_time_seconds"]["median"]
            .as_f64()
            .expect("lead time")
            >= 0.0
    );
    assert_eq!(figures["jobs"][0]["name"], "page");
    assert_eq!(figures["jobs"][0]["success_ratio"], 1.0);
    assert!(figures["definitions"].to_string().contains("lead_time"));
    let shown = succeeded(&server.cli(&["metrics", "-p", "web"]));
    assert!(
        shown.contains("change failure rate   0% (0 of 1)"),
        "{shown}"
    );
}
