//! An agent token holder sends whatever times it likes with a job's log
//! and steps: i64::MIN and MAX, a step index past any job's, another try's
//! number. The server stores them within the job's times and try (or not
//! at all), and keeps serving the log and the run.

use super::support::{agent_post, agent_token, curl};
use crate::common::server::{Remote, ServerProcess};
use crate::common::service::succeeded;

#[test]
fn hostile_log_and_step_times_are_stored_within_the_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  build:\n    steps:\n      - run: echo hi\n",
    );
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let agent = agent_token(&server, "hostile-agent");
    succeeded(&server.cli(&["trigger", "demo"]));
    let job = claim_any(&server, &agent);
    let before = now_ms();

    let chunk = serde_json::json!({
        "seq": 1,
        "lines": ["first", "second", "third"],
        "times": [i64::MIN, i64::MAX, i64::MIN],
        "steps": [
            { "attempt": 99, "index": 0, "title": "backwards", "started_at": i64::MAX,
              "finished_at": i64::MIN, "exit_code": 0 },
        ],
    });
    let (code, body) = agent_post(
        &server,
        &agent,
        &format!("jobs/{job}/log"),
        &chunk.to_string(),
    );
    eprintln!("hostile-log-times: {code} {body}");
    assert_eq!(code, 204, "{body}");
    for index in [i64::MAX, -1, 10_000] {
        let chunk = serde_json::json!({
            "seq": 2, "lines": [],
            "steps": [{ "attempt": 1, "index": index, "title": "far", "started_at": 0 }],
        });
        let (code, body) = agent_post(
            &server,
            &agent,
            &format!("jobs/{job}/log"),
            &chunk.to_string(),
        );
        eprintln!("hostile-step-index {index}: {code} {body}");
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("out of range"), "{body}");
    }
    let after = now_ms() + 60_000;

    let (code, page) = curl(&[
        "-H",
        &format!("Authorization: Bearer {}", server.token),
        &format!("{}/api/v1/jobs/{job}/log", server.url),
    ]);
    assert_eq!(code, 200, "the log still reads: {page}");
    let page: serde_json::Value = serde_json::from_str(&page).expect("JSON");
    let times: Vec<&str> = page["times"]
        .as_array()
        .expect("times")
        .iter()
        .map(|t| t.as_str().expect("a time"))
        .collect();
    assert_eq!(times.len(), 3, "{page}");
    for t in &times {
        let at = humantime::parse_rfc3339(t).expect("RFC 3339");
        let ms = i64::try_from(
            at.duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis(),
        )
        .expect("ms");
        assert!(
            (before - 60_000..=after).contains(&ms),
            "{t} is outside the job's times"
        );
    }

    let status = server.run_status("demo/1");
    let steps = status["jobs"][0]["steps"]
        .as_array()
        .expect("steps")
        .clone();
    assert_eq!(
        steps.len(),
        1,
        "only index 0 is stored, for the current try: {status}"
    );
    let started = steps[0]["started_at"].as_i64().expect("started");
    let finished = steps[0]["finished_at"].as_i64().expect("finished");
    let claimed = status["jobs"][0]["started_at"].as_i64().expect("claimed");
    assert!((claimed..=after).contains(&started), "{status}");
    assert!((started..=after).contains(&finished), "{status}");
    assert!(steps[0]["duration_ms"].as_i64().expect("duration") >= 0);
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(since.as_millis()).expect("ms")
}

/// Claims the one queued job (of any kind) as an agent would; its id.
pub fn claim_any(server: &ServerProcess, agent: &str) -> i64 {
    let request = r#"{"worker":"hostile","labels":[],"wait_ms":10000}"#;
    let (code, claimed) = agent_post(server, agent, "claim", request);
    assert_eq!(code, 200, "claim: {claimed}");
    let claimed: serde_json::Value = serde_json::from_str(&claimed).expect("JSON");
    claimed["job_id"].as_i64().expect("job id")
}
