//! The store's stories, each run against SQLite and against PostgreSQL: both
//! backends must behave the same.

use std::collections::HashSet;

#[macro_use]
mod common;

use slipway_store::{
    Claim, JobId, JobScope, NewJob, NewRun, SecretScope, State, StepTime, Store, StoreError,
};

stories!(
    projects_are_unique_and_removable,
    runs_are_numbered_per_project,
    claiming_is_exclusive_under_contention,
    labels_decide_who_may_claim,
    expired_leases_are_requeued,
    transitions_are_recorded_and_checked,
    logs_are_read_in_pages,
    log_lines_and_steps_keep_their_times,
    needs_release_skip_and_settle_the_run,
    triggers_secrets_and_tokens_are_remembered,
    concurrency_limits_hold_claims_back,
    a_job_that_keeps_losing_its_worker_fails,
    jobs_nobody_can_take_do_not_block_the_queue,
);

fn jobs(names: &[&str]) -> NewRun {
    NewRun {
        commit: "c0ffee".into(),
        branch: "main".into(),
        trigger: "manual".into(),
        pipeline: String::new(),
        jobs: names
            .iter()
            .map(|n| NewJob {
                name: n.to_string(),
                ..NewJob::default()
            })
            .collect(),
        ..NewRun::default()
    }
}

fn claim<'a>(worker: &'a str, labels: &'a [String]) -> Claim<'a> {
    Claim {
        worker,
        labels,
        lease_ms: 60_000,
        max_running: None,
    }
}

async fn projects_are_unique_and_removable(store: Store) {
    let p = store
        .add_project("web", "/srv/git/web.git", &["main".into()], Some(60))
        .await
        .expect("add");
    assert_eq!(store.project("web").await.expect("get"), Some(p.clone()));
    let again = store.add_project("web", "/elsewhere", &[], None).await;
    assert!(matches!(again, Err(StoreError::Conflict(m)) if m.contains("`web` exists already")));
    store
        .create_run(p.id, &jobs(&["build"]))
        .await
        .expect("run");
    store.remove_project("web").await.expect("remove");
    assert!(store.projects().await.expect("list").is_empty());
    assert!(matches!(
        store.remove_project("web").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn runs_are_numbered_per_project(store: Store) {
    let a = store.add_project("a", "/a", &[], None).await.expect("add");
    let b = store.add_project("b", "/b", &[], None).await.expect("add");
    for expected in 1..=3 {
        let run = store
            .create_run(a.id, &jobs(&["x", "y"]))
            .await
            .expect("run");
        assert_eq!(run.number, expected);
        assert_eq!(run.state, State::Queued);
    }
    assert_eq!(
        store
            .create_run(b.id, &jobs(&[]))
            .await
            .expect("run")
            .number,
        1
    );
    let runs = store.runs(a.id, 10).await.expect("runs");
    assert_eq!(runs.iter().map(|r| r.number).collect::<Vec<_>>(), [3, 2, 1]);
    let jobs = store.jobs_of(runs[0].id).await.expect("jobs");
    assert_eq!(
        jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
}

async fn claiming_is_exclusive_under_contention(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let names: Vec<String> = (0..40).map(|i| format!("job{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    store.create_run(p.id, &jobs(&refs)).await.expect("run");
    // Eight workers race for forty jobs; every job must be claimed exactly once.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut mine = Vec::new();
            while let Some(job) = store.claim_job(&claim(&worker, &[])).await.expect("claim") {
                assert_eq!(job.worker.as_deref(), Some(worker.as_str()));
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut all: Vec<JobId> = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let unique: HashSet<JobId> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "claimed {} times", all.len());
    assert_eq!(unique.len(), 40);
}

async fn labels_decide_who_may_claim(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let mut new = jobs(&["needs-docker", "anywhere"]);
    new.jobs[0].labels = vec!["docker".into()];
    store.create_run(p.id, &new).await.expect("run");
    let plain = store
        .claim_job(&claim("plain", &[]))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(plain.name, "anywhere");
    assert!(
        store
            .claim_job(&claim("plain", &[]))
            .await
            .expect("claim")
            .is_none()
    );
    let docker = ["docker".to_string(), "linux".to_string()];
    let job = store
        .claim_job(&claim("big", &docker))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(job.name, "needs-docker");
}

async fn expired_leases_are_requeued(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    store.create_run(p.id, &jobs(&["j"])).await.expect("run");
    let short = Claim {
        worker: "dies",
        labels: &[],
        lease_ms: -1,
        max_running: None,
    };
    let job = store.claim_job(&short).await.expect("claim").expect("job");
    assert!(
        !store
            .heartbeat(job.id, "someone-else", 1000)
            .await
            .expect("hb")
    );
    let requeued = store.requeue_expired().await.expect("requeue");
    assert_eq!(requeued, [job.id]);
    let again = store.job(job.id).await.expect("job");
    assert_eq!(again.state, State::Queued);
    assert_eq!(
        again.reason.as_deref(),
        Some("re-queued: dies stopped heartbeating")
    );
    // The dead worker's late report is refused; the new holder's is taken.
    let second = store
        .claim_job(&claim("alive", &[]))
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(second.attempt, 2);
    assert!(
        !store
            .finish_job(job.id, "dies", State::Succeeded, Some(0), None)
            .await
            .expect("finish")
    );
    assert!(
        store
            .finish_job(job.id, "alive", State::Succeeded, Some(0), None)
            .await
            .expect("finish")
    );
    assert_eq!(
        store.job(job.id).await.expect("job").state,
        State::Succeeded
    );
}

async fn transitions_are_recorded_and_checked(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let run = store.create_run(p.id, &jobs(&["j"])).await.expect("run");
    assert!(
        store
            .set_run_state(run.id, State::Queued, State::Running, None)
            .await
            .expect("set")
    );
    // A stale compare-and-set changes nothing.
    assert!(
        !store
            .set_run_state(run.id, State::Queued, State::Running, None)
            .await
            .expect("set")
    );
    assert!(
        store
            .set_run_state(run.id, State::Running, State::Failed, Some("job j failed"))
            .await
            .expect("set")
    );
    let bad = store
        .set_run_state(run.id, State::Failed, State::Running, None)
        .await;
    assert!(matches!(bad, Err(StoreError::Conflict(_))));
    let history = store.transitions("run", run.id.0).await.expect("history");
    let states: Vec<State> = history.iter().map(|t| t.to).collect();
    assert_eq!(states, [State::Queued, State::Running, State::Failed]);
    assert_eq!(history[2].reason.as_deref(), Some("job j failed"));
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));
    let run = store.run(run.id).await.expect("run");
    assert!(run.finished_at.is_some());
}

async fn logs_are_read_in_pages(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let run = store.create_run(p.id, &jobs(&["j"])).await.expect("run");
    let job = store.jobs_of(run.id).await.expect("jobs")[0].id;
    // 100 000 lines in chunks of 500, as a worker stores them.
    let lines: Vec<String> = (0..100_000).map(|i| format!("line {i}")).collect();
    for (seq, chunk) in lines.chunks(500).enumerate() {
        store
            .append_log(job, seq as i64, chunk, &[])
            .await
            .expect("append");
    }
    // A retried upload of chunk 0 changes nothing.
    store
        .append_log(job, 0, &lines[..500], &[])
        .await
        .expect("append again");
    // A page in the middle, across a chunk boundary: only the two chunks holding it are read.
    let page = store.read_log(job, 50_450, 100).await.expect("page");
    assert_eq!(page.lines.first().map(String::as_str), Some("line 50450"));
    assert_eq!(page.lines.last().map(String::as_str), Some("line 50549"));
    assert_eq!(page.next_line, 50_550);
    let tail = store.read_log(job, 99_990, 100).await.expect("tail");
    assert_eq!(tail.lines.len(), 10);
    assert_eq!(tail.next_line, 100_000);
    assert!(
        store
            .read_log(job, 100_000, 100)
            .await
            .expect("end")
            .lines
            .is_empty()
    );
}

async fn log_lines_and_steps_keep_their_times(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let run = store.create_run(p.id, &jobs(&["j"])).await.expect("run");
    let job = store.jobs_of(run.id).await.expect("jobs")[0].id;
    let t0 = 1_700_000_000_000;
    // A chunk from a worker too old to send times, then two timed ones.
    store
        .append_log(job, 0, &["old".to_string()], &[])
        .await
        .expect("untimed");
    let lines: Vec<String> = (0..4).map(|i| format!("line {i}")).collect();
    store
        .append_log(job, 1, &lines[..2], &[t0, t0 + 5])
        .await
        .expect("timed");
    store
        .append_log(job, 2, &lines[2..], &[t0 + 5, t0 + 1_250])
        .await
        .expect("timed");
    let page = store.read_log(job, 0, 100).await.expect("read");
    assert_eq!(page.lines.len(), 5);
    assert_eq!(
        page.times,
        [None, Some(t0), Some(t0 + 5), Some(t0 + 5), Some(t0 + 1_250)]
    );
    // A page starting inside a chunk gets that chunk's later times.
    let page = store.read_log(job, 2, 2).await.expect("read");
    assert_eq!(page.lines, ["line 1", "line 2"]);
    assert_eq!(page.times, [Some(t0 + 5), Some(t0 + 5)]);

    // A step recorded when it starts, then again when it ends.
    let mut step = StepTime {
        attempt: 1,
        index: 0,
        title: "make".into(),
        started_at: t0,
        finished_at: None,
        exit_code: None,
    };
    store
        .record_steps(job, &[step.clone()])
        .await
        .expect("started");
    step.finished_at = Some(t0 + 1_250);
    step.exit_code = Some(0);
    let second = StepTime {
        index: 1,
        title: "test".into(),
        started_at: t0 + 1_250,
        ..step.clone()
    };
    store
        .record_steps(job, &[step.clone(), second.clone()])
        .await
        .expect("ended");
    // Steps of an earlier try are not this job's steps any more.
    let stale = StepTime {
        attempt: 0,
        ..second.clone()
    };
    store.record_steps(job, &[stale]).await.expect("stale");
    store.claim_job(&claim("w", &[])).await.expect("claim");
    let steps = store.steps_of_run(run.id).await.expect("steps");
    assert_eq!(steps, [(job, step.clone()), (job, second)]);
    assert_eq!(steps[0].1.duration_ms(), Some(1_250));
}

async fn needs_release_skip_and_settle_the_run(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let mut new = jobs(&["build", "lint", "test", "deploy", "docs"]);
    new.jobs[1].allow_failure = true;
    new.jobs[2].needs = vec!["build".into(), "lint".into()];
    new.jobs[3].needs = vec!["test".into()];
    new.jobs[4].needs = vec!["deploy".into()];
    let run = store.create_run(p.id, &new).await.expect("run");
    let state = |jobs: &[slipway_store::Job], name: &str| {
        jobs.iter()
            .find(|j| j.name == name)
            .map(|j| j.state)
            .expect("job")
    };
    // Only jobs without needs can be claimed at first.
    let mut first = Vec::new();
    while let Some(j) = store.claim_job(&claim("w", &[])).await.expect("claim") {
        first.push(j);
    }
    assert_eq!(
        first.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["build", "lint"]
    );
    assert_eq!(store.run(run.id).await.expect("run").state, State::Running);
    store
        .finish_job(first[0].id, "w", State::Succeeded, Some(0), None)
        .await
        .expect("finish");
    store
        .finish_job(
            first[1].id,
            "w",
            State::Failed,
            Some(1),
            Some("lint found issues"),
        )
        .await
        .expect("finish");
    store.settle_run(run.id).await.expect("settle");
    let jobs_now = store.jobs_of(run.id).await.expect("jobs");
    assert_eq!(
        state(&jobs_now, "test"),
        State::Queued,
        "an allowed failure unblocks"
    );
    let test = store
        .claim_job(&claim("w", &[]))
        .await
        .expect("claim")
        .expect("test");
    store
        .finish_job(test.id, "w", State::Failed, Some(2), None)
        .await
        .expect("finish");
    let settled = store.settle_run(run.id).await.expect("settle");
    let jobs_now = store.jobs_of(run.id).await.expect("jobs");
    assert_eq!(state(&jobs_now, "deploy"), State::Skipped);
    assert_eq!(state(&jobs_now, "docs"), State::Skipped, "skips cascade");
    assert_eq!(settled.state, State::Failed);
    assert_eq!(settled.reason.as_deref(), Some("failed jobs: test"));
    let reason = jobs_now
        .iter()
        .find(|j| j.name == "deploy")
        .and_then(|j| j.reason.clone());
    assert_eq!(reason.as_deref(), Some("needs `test`, which failed"));
}

async fn triggers_secrets_and_tokens_are_remembered(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    assert!(store.first_delivery(p.id, "d-1").await.expect("delivery"));
    assert!(!store.first_delivery(p.id, "d-1").await.expect("redelivery"));
    assert!(
        store
            .set_branch_head(p.id, "main", "aaa")
            .await
            .expect("head")
    );
    assert!(
        !store
            .set_branch_head(p.id, "main", "aaa")
            .await
            .expect("same head")
    );
    assert!(
        store
            .set_branch_head(p.id, "main", "bbb")
            .await
            .expect("new head")
    );
    assert_eq!(
        store.branch_heads(p.id).await.expect("heads"),
        [("main".to_string(), "bbb".to_string())]
    );
    store
        .set_secret(p.id, "TOKEN", &[1, 2, 3], &SecretScope::protected())
        .await
        .expect("set");
    // Replacing a secret replaces its scope too.
    let deployments_only = SecretScope {
        jobs: JobScope::None,
        environments: Some(vec!["prod".into()]),
    };
    store
        .set_secret(p.id, "TOKEN", &[4, 5], &deployments_only)
        .await
        .expect("replace");
    assert_eq!(
        store.scoped_secret(p.id, "TOKEN").await.expect("get"),
        Some((vec![4, 5], deployments_only.clone()))
    );
    assert_eq!(store.secret_names(p.id).await.expect("names"), ["TOKEN"]);
    let listed = store.secrets(p.id).await.expect("list");
    assert_eq!(listed[0].scope, deployments_only);
    assert!(!listed[0].scope.allows_environment("dev"));
    store.remove_secret(p.id, "TOKEN").await.expect("rm");
    assert!(matches!(
        store.remove_secret(p.id, "TOKEN").await,
        Err(StoreError::NotFound(_))
    ));
    store
        .add_token("hash-1", "ci", "developer")
        .await
        .expect("token");
    assert_eq!(
        store.token("hash-1").await.expect("lookup"),
        Some(("ci".into(), "developer".into()))
    );
    assert_eq!(store.token("hash-2").await.expect("lookup"), None);
}

async fn concurrency_limits_hold_claims_back(store: Store) {
    let a = store.add_project("a", "/a", &[], None).await.expect("add");
    let b = store.add_project("b", "/b", &[], None).await.expect("add");
    store.set_max_running(a.id, Some(1)).await.expect("limit");
    store
        .create_run(a.id, &jobs(&["a1", "a2"]))
        .await
        .expect("run");
    store
        .create_run(b.id, &jobs(&["b1", "b2"]))
        .await
        .expect("run");
    let mut names = Vec::new();
    while let Some(j) = store.claim_job(&claim("w", &[])).await.expect("claim") {
        names.push(j.name);
    }
    assert_eq!(
        names,
        ["a1", "b1", "b2"],
        "project a may run one job at a time"
    );
    let overall = Claim {
        max_running: Some(3),
        ..claim("w", &[])
    };
    let a1 = store
        .jobs_of(store.runs(a.id, 1).await.expect("runs")[0].id)
        .await
        .expect("jobs")[0]
        .clone();
    store
        .finish_job(a1.id, "w", State::Succeeded, Some(0), None)
        .await
        .expect("finish");
    let limited = Claim {
        max_running: Some(2),
        ..claim("w", &[])
    };
    assert!(
        store.claim_job(&limited).await.expect("claim").is_none(),
        "two are running: the overall limit holds"
    );
    let next = store.claim_job(&overall).await.expect("claim").expect("a2");
    assert_eq!(next.name, "a2");
}

async fn a_job_that_keeps_losing_its_worker_fails(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let run = store
        .create_run(p.id, &jobs(&["crashy"]))
        .await
        .expect("run");
    let dying = Claim {
        lease_ms: -1,
        ..claim("w", &[])
    };
    for _ in 0..slipway_store::MAX_ATTEMPTS {
        store.claim_job(&dying).await.expect("claim").expect("job");
        store.requeue_expired().await.expect("reap");
    }
    let job = &store.jobs_of(run.id).await.expect("jobs")[0];
    assert_eq!(job.state, State::Failed);
    assert_eq!(
        job.reason.as_deref(),
        Some("failed: lost its worker 3 times (last w); not re-queued")
    );
    assert_eq!(
        store.settle_run(run.id).await.expect("settle").state,
        State::Failed
    );
}

async fn jobs_nobody_can_take_do_not_block_the_queue(store: Store) {
    let p = store.add_project("p", "/p", &[], None).await.expect("add");
    let names: Vec<String> = (0..100).map(|i| format!("gpu{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut new = jobs(&refs);
    for job in &mut new.jobs {
        job.labels = vec!["gpu".into()];
    }
    store.create_run(p.id, &new).await.expect("gpu run");
    store
        .create_run(p.id, &jobs(&["plain"]))
        .await
        .expect("plain run");
    let job = store
        .claim_job(&claim("cpu-only", &[]))
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(job.name, "plain", "100 jobs needing a gpu must not hide it");
}
