//! The store's stories, each run against SQLite and against PostgreSQL: both
//! backends must behave the same.

use std::collections::HashSet;

use slipway_store::{
    Claim, JobId, NewJob, NewManifest, NewPromotion, NewRun, RepoKind, Repository, State, Store,
    StoreError, TagPolicy, now_ms,
};

mod harness {
    use slipway_store::Store;
    use sqlx::{Connection, Executor};

    /// A fresh SQLite database in a temporary directory.
    pub async fn sqlite() -> (Store, Box<dyn std::any::Any>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("slipway.db").display());
        (Store::open(&url).await.expect("open sqlite"), Box::new(dir))
    }

    /// A fresh PostgreSQL database, dropped when the guard goes.
    pub async fn postgres() -> (Store, Box<dyn std::any::Any>) {
        let admin = std::env::var("SLIPWAY_TEST_DATABASE_URL").expect(
            "SLIPWAY_TEST_DATABASE_URL is not set: run scripts/test, which starts PostgreSQL and sets it",
        );
        let name = format!("slipway_test_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("bad SLIPWAY_TEST_DATABASE_URL"),
        };
        let store = Store::open(&url).await.expect("open postgres");
        (store, Box::new(DropDb { admin, name }))
    }

    fn rand_suffix() -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    }

    struct DropDb {
        admin: String,
        name: String,
    }

    impl Drop for DropDb {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            // Drop runs outside the test's runtime: use a small one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = conn
                            .execute(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs a story on both backends.
macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let (store, _guard) = super::harness::sqlite().await;
                super::$story(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let (store, _guard) = super::harness::postgres().await;
                super::$story(store.clone()).await;
                store.close().await;
            })*
        }
    };
}

stories!(
    projects_are_unique_and_removable,
    runs_are_numbered_per_project,
    claiming_is_exclusive_under_contention,
    labels_decide_who_may_claim,
    expired_leases_are_requeued,
    transitions_are_recorded_and_checked,
    logs_are_read_in_pages,
    needs_release_skip_and_settle_the_run,
    triggers_secrets_and_tokens_are_remembered,
    concurrency_limits_hold_claims_back,
    a_job_that_keeps_losing_its_worker_fails,
    jobs_nobody_can_take_do_not_block_the_queue,
    registry_manifests_tags_and_promotion,
    registry_collection_and_retention,
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
            .append_log(job, seq as i64, chunk)
            .await
            .expect("append");
    }
    // A retried upload of chunk 0 changes nothing.
    store
        .append_log(job, 0, &lines[..500])
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
        .set_secret(p.id, "TOKEN", &[1, 2, 3])
        .await
        .expect("set");
    store
        .set_secret(p.id, "TOKEN", &[4, 5])
        .await
        .expect("replace");
    assert_eq!(
        store.secret(p.id, "TOKEN").await.expect("get"),
        Some(vec![4, 5])
    );
    assert_eq!(store.secret_names(p.id).await.expect("names"), ["TOKEN"]);
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

fn repository(name: &str, policy: TagPolicy) -> Repository {
    Repository {
        name: name.into(),
        kind: RepoKind::Oci,
        policy,
        keep_tags: None,
        anonymous_pull: false,
        upstream: None,
        ttl_seconds: None,
        created_at: 0,
    }
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A manifest of `ci/app` over the blobs `refs`, stored (as a blob) and pushed under `tag`.
async fn push(
    store: &Store,
    repo: &str,
    manifest: char,
    refs: &[String],
    tag: &str,
    immutable: bool,
) -> Result<(), StoreError> {
    let d = digest(manifest);
    store.blob_stored(&d, 100, Some((repo, "app"))).await?;
    store
        .put_manifest(&NewManifest {
            repo,
            image: "app",
            digest: &d,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            size: 100,
            artifact_type: None,
            subject: None,
            annotations: None,
            blobs: refs,
            children: &[],
            tag: Some(tag),
            immutable_tags: immutable,
            lazy: false,
        })
        .await
}

async fn registry_manifests_tags_and_promotion(store: Store) {
    store
        .put_repository(&repository("ci", TagPolicy::Ci), false)
        .await
        .expect("ci");
    store
        .put_repository(&repository("release", TagPolicy::Release), false)
        .await
        .expect("release");
    assert!(matches!(
        store
            .put_repository(&repository("ci", TagPolicy::Ci), false)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let layers = vec![digest('1'), digest('2')];
    for l in &layers {
        store
            .blob_stored(l, 10, Some(("ci", "app")))
            .await
            .expect("blob");
    }
    // A manifest over a blob the image does not hold names it.
    let err = push(&store, "ci", 'x', &[digest('9')], "bad", false)
        .await
        .expect_err("unknown blob");
    assert!(
        matches!(&err, StoreError::NotFound(m) if m.contains(&digest('9'))),
        "{err}"
    );

    for tag in ["b", "B", "a", "A"] {
        push(&store, "ci", 'a', &layers, tag, false)
            .await
            .expect("push");
    }
    let page = store.tags("ci", "app", None, 2).await.expect("tags");
    assert_eq!(
        (page.tags, page.more),
        (vec!["A".to_string(), "B".to_string()], true),
        "byte order on both backends"
    );
    let page = store.tags("ci", "app", Some("B"), 10).await.expect("tags");
    assert_eq!(
        (page.tags, page.more),
        (vec!["a".to_string(), "b".to_string()], false)
    );
    assert_eq!(
        store
            .manifest("ci", "app", "a")
            .await
            .expect("read")
            .map(|m| m.digest),
        Some(digest('a'))
    );

    // Tags move in ci, never in release.
    push(&store, "ci", 'b', &layers, "a", false)
        .await
        .expect("moves");
    assert_eq!(
        store
            .manifest("ci", "app", "a")
            .await
            .expect("read")
            .map(|m| m.digest),
        Some(digest('b'))
    );

    let promotion = |tag: &'static str, manifest: char| {
        let d = digest(manifest);
        let store = store.clone();
        async move {
            store
                .promote(&NewPromotion {
                    image: "app",
                    digest: &d,
                    from_repo: "ci",
                    to_repo: "release",
                    tag: Some(tag),
                    reason: Some("tested"),
                    by: "admin",
                    immutable_tags: true,
                })
                .await
        }
    };
    assert!(promotion("1.0", 'a').await.expect("promote"));
    assert!(!promotion("1.0", 'a').await.expect("again"), "idempotent");
    assert!(
        matches!(promotion("1.0", 'b').await, Err(StoreError::Conflict(m)) if m.contains("never move"))
    );
    assert_eq!(
        store
            .linked_blob("release", "app", &digest('2'))
            .await
            .expect("link"),
        Some(10)
    );
    let history = store.promotions("app", None).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].reason.as_deref(), Some("tested"));
    let referrers = store
        .referrers("ci", "app", &digest('a'), None)
        .await
        .expect("referrers");
    assert!(referrers.is_empty());
}

async fn registry_collection_and_retention(store: Store) {
    let mut ci = repository("ci", TagPolicy::Ci);
    ci.keep_tags = Some(1);
    store.put_repository(&ci, false).await.expect("ci");
    store
        .put_repository(&repository("release", TagPolicy::Release), false)
        .await
        .expect("release");
    for (l, _) in [('1', ()), ('2', ()), ('3', ())] {
        store
            .blob_stored(&digest(l), 10, Some(("ci", "app")))
            .await
            .expect("blob");
    }
    push(&store, "ci", 'a', &[digest('1')], "old", false)
        .await
        .expect("old");
    push(&store, "ci", 'b', &[digest('2')], "new", false)
        .await
        .expect("new");
    let live = store.live_blobs().await.expect("live");
    assert!(live.contains(&digest('1')) && live.contains(&digest('a')));
    assert!(
        !live.contains(&digest('3')),
        "an unreferenced upload is not alive"
    );

    let later = now_ms() + 60_000;
    assert!(
        !store.forget_blob(&digest('1'), later).await.expect("kept"),
        "referenced blobs stay"
    );
    assert!(
        !store
            .forget_blob(&digest('3'), now_ms() - 60_000)
            .await
            .expect("kept"),
        "touched inside the window"
    );
    assert!(store.forget_blob(&digest('3'), later).await.expect("freed"));
    assert_eq!(store.blob_size(&digest('3')).await.expect("size"), None);

    // Retention keeps the newest tag; what a release repository holds is never retired.
    let dry = store.apply_retention("ci", 1, true).await.expect("dry");
    assert_eq!(
        dry.iter().map(|r| r.tag.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    assert!(
        store
            .manifest("ci", "app", "old")
            .await
            .expect("read")
            .is_some(),
        "dry run changes nothing"
    );
    store
        .promote(&NewPromotion {
            image: "app",
            digest: &digest('a'),
            from_repo: "ci",
            to_repo: "release",
            tag: Some("1.0"),
            reason: None,
            by: "admin",
            immutable_tags: true,
        })
        .await
        .expect("promote");
    assert!(
        store
            .apply_retention("ci", 1, false)
            .await
            .expect("retention")
            .is_empty(),
        "released: kept"
    );
    store
        .delete_manifest("release", "app", &digest('a'))
        .await
        .expect("unrelease");
    let retired = store
        .apply_retention("ci", 1, false)
        .await
        .expect("retention");
    assert_eq!(retired.len(), 1);
    // Untagged now; only what is older than the cutoff goes.
    let earlier = now_ms() - 60_000;
    assert!(
        store
            .remove_untagged("ci", earlier, false)
            .await
            .expect("untagged")
            .is_empty()
    );
    let removed = store
        .remove_untagged("ci", later, false)
        .await
        .expect("untagged");
    assert_eq!(removed, [("app".to_string(), digest('a'))]);
    assert!(
        store
            .manifest("ci", "app", &digest('a'))
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        !store
            .live_blobs()
            .await
            .expect("live")
            .contains(&digest('1')),
        "its layer is garbage now"
    );
}
