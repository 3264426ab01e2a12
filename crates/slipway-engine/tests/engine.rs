//! The engine with a real git repository, a real SQLite store and an
//! in-process worker running real processes.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use slipway_engine::{Engine, LocalDispatch, Paths, Target, Worker, WorkerConfig};
use slipway_store::{State, Store};
use tokio_util::sync::CancellationToken;

fn sh(dir: &Path, script: &str) {
    let ok = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .status()
        .expect("sh")
        .success();
    assert!(ok, "{script}");
}

/// A repository with a pipeline, pushed to a bare remote.
fn remote(tmp: &Path, pipeline: &str) -> String {
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join(".slipway.yml"), pipeline).expect("write");
    sh(
        &work,
        "git init -q -b main . && git add . && git -c user.name=t -c user.email=t@t commit -qm one",
    );
    sh(tmp, "git clone -q --bare work remote.git");
    tmp.join("remote.git").display().to_string()
}

async fn engine(tmp: &Path) -> Engine {
    let url = format!("sqlite://{}", tmp.join("slipway.db").display());
    Engine::new(
        Store::open(&url).await.expect("store"),
        Paths::new(&tmp.join("data")),
    )
}

fn start_worker(engine: &Engine, name: &str, shutdown: &CancellationToken) {
    let dispatch = LocalDispatch {
        engine: engine.clone(),
    };
    let config = WorkerConfig {
        name: name.into(),
        labels: vec![],
        work_root: engine.paths.work(),
        grace: Duration::from_secs(5),
        docker: None,
        // No launcher binary here, and no hostile steps: the sandbox is
        // tested through the real server (tests/hostile/jobs.rs).
        sandbox: None,
    };
    tokio::spawn(Worker::new(Arc::new(dispatch), config).run(shutdown.clone()));
}

async fn wait_for_end(engine: &Engine, run: slipway_store::RunId) -> slipway_store::Run {
    let mut changes = engine.logs.subscribe();
    loop {
        let run = engine.store.run(run).await.expect("run");
        if run.state.is_final() {
            return run;
        }
        // Any log line or a 100 ms tick: look again.
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.recv()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggered_run_runs_its_jobs_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(
        tmp.path(),
        "jobs:\n  build:\n    steps:\n      - run: echo built > out.txt\n    artifacts: [out.txt]\n  test:\n    needs: [build]\n    steps:\n      - run: grep built out.txt && echo tested\n",
    );
    let engine = engine(tmp.path()).await;
    let project = engine
        .store
        .add_project("demo", &url, &[], None)
        .await
        .expect("project");
    let shutdown = CancellationToken::new();
    start_worker(&engine, "w1", &shutdown);
    let run = engine
        .trigger(&project, Target::Branch("main".into()), "manual")
        .await
        .expect("trigger");
    assert_eq!(run.number, 1);
    let done = tokio::time::timeout(Duration::from_secs(60), wait_for_end(&engine, run.id))
        .await
        .expect("finishes");
    assert_eq!(done.state, State::Succeeded, "{done:?}");
    let jobs = engine.store.jobs_of(run.id).await.expect("jobs");
    let test = jobs.iter().find(|j| j.name == "test").expect("test job");
    let log = engine.store.read_log(test.id, 0, 100).await.expect("log");
    assert!(log.lines.iter().any(|l| l == "tested"), "{:?}", log.lines);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pipeline_fails_the_run_with_its_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = remote(tmp.path(), "jobs:\n  build:\n    stepz: []\n");
    let engine = engine(tmp.path()).await;
    let project = engine
        .store
        .add_project("demo", &url, &[], None)
        .await
        .expect("project");
    let run = engine
        .trigger(&project, Target::Branch("main".into()), "manual")
        .await
        .expect("trigger");
    assert_eq!(run.state, State::Failed);
    let reason = run.reason.unwrap_or_default();
    assert!(
        reason.contains(".slipway.yml:3:5: error: unknown key `stepz`"),
        "{reason}"
    );
}
