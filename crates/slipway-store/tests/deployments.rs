//! Releases, environments, deployments and decisions, on SQLite and PostgreSQL alike.

#[macro_use]
mod common;

use slipway_store::{
    DeployState, NewDeployment, NewJob, NewRelease, NewRun, ReleaseCommit, ReleaseImage, State,
    Store, StoreError,
};

stories!(
    a_green_run_makes_one_release_and_a_version_never_moves,
    deployments_move_by_compare_and_set_and_success_makes_them_current,
    decisions_are_one_per_person_and_audited,
    tokens_belong_to_people_and_claims_to_the_token_that_made_them,
    runs_remember_the_commits_a_branch_built,
);

async fn green_run(store: &Store, project: slipway_store::ProjectId) -> slipway_store::Run {
    let run = store
        .create_run(
            project,
            &NewRun {
                commit: "c0ffee".into(),
                branch: "main".into(),
                trigger: "manual".into(),
                pipeline: String::new(),
                jobs: vec![NewJob {
                    name: "build".into(),
                    ..NewJob::default()
                }],
                ..NewRun::default()
            },
        )
        .await
        .expect("run");
    let claimed = store
        .claim_job(&slipway_store::Claim {
            worker: "w",
            labels: &[],
            lease_ms: 60_000,
            max_running: None,
        })
        .await
        .expect("claim")
        .expect("a job");
    store
        .finish_job(claimed.id, "w", State::Succeeded, Some(0), None)
        .await
        .expect("finish");
    store.settle_run(run.id).await.expect("settle")
}

fn release<'a>(
    project: slipway_store::ProjectId,
    run: &'a slipway_store::Run,
    version: &'a str,
    images: &'a [ReleaseImage],
    commits: &'a [ReleaseCommit],
) -> NewRelease<'a> {
    NewRelease {
        project,
        version,
        run: run.id,
        commit: &run.commit,
        branch: &run.branch,
        author: "Alice <alice@example.com>",
        message: "a change",
        images,
        commits,
    }
}

async fn a_green_run_makes_one_release_and_a_version_never_moves(store: Store) {
    let p = store
        .add_project("web", "/git/web", &[], None)
        .await
        .expect("project");
    let run = green_run(&store, p.id).await;
    assert_eq!(run.state, State::Succeeded);
    assert_eq!(
        store.undelivered_runs().await.expect("undelivered"),
        vec![run.id]
    );
    let images = [ReleaseImage {
        reference: "127.0.0.1:5000/ci/web:1".into(),
        digest: "sha256:ab".into(),
    }];
    let commits = [ReleaseCommit {
        sha: "c0ffee".into(),
        author: "Alice".into(),
        email: "alice@example.com".into(),
        message: "a change".into(),
        at: Some(1_700_000_000_000),
        ..ReleaseCommit::default()
    }];
    let made = store
        .create_release(&release(p.id, &run, "1.1", &images, &commits))
        .await
        .expect("release");
    assert_eq!(made.images, images);
    assert_eq!(made.commits, commits);
    assert_eq!(
        store
            .release_by_version(p.id, "1.1")
            .await
            .expect("by version"),
        made
    );
    // The same version again is refused, and what was stored stays.
    let other = green_run(&store, p.id).await;
    let again = store
        .create_release(&release(p.id, &other, "1.1", &[], &[]))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(m)) if m.contains("never moves")));
    assert_eq!(store.release(made.id).await.expect("kept").images, images);
    assert!(store.mark_delivered(run.id).await.expect("mark"));
    assert!(!store.mark_delivered(run.id).await.expect("only once"));
    assert_eq!(
        store.undelivered_runs().await.expect("left"),
        vec![other.id]
    );
    let missing = store.release_by_version(p.id, "9.9").await;
    assert!(matches!(missing, Err(StoreError::NotFound(m)) if m.contains("slipway releases")));
}

async fn deployments_move_by_compare_and_set_and_success_makes_them_current(store: Store) {
    let p = store
        .add_project("web", "/git/web", &[], None)
        .await
        .expect("project");
    let run = green_run(&store, p.id).await;
    let r1 = store
        .create_release(&release(p.id, &run, "1", &[], &[]))
        .await
        .expect("r1");
    let run2 = green_run(&store, p.id).await;
    let r2 = store
        .create_release(&release(p.id, &run2, "2", &[], &[]))
        .await
        .expect("r2");
    store.ensure_environment(p.id, "dev", 0).await.expect("env");
    let deploy = |release: i64| NewDeployment {
        project: p.id,
        environment: "dev",
        release,
        action: "deploy",
        requested_by: "run 1",
        awaiting_until: None,
    };
    let d1 = store.create_deployment(&deploy(r1.id)).await.expect("d1");
    assert_eq!(d1.state, DeployState::Queued);
    assert!(
        store
            .set_deploy_state(d1.id, DeployState::Queued, DeployState::Deploying, None)
            .await
            .expect("start")
    );
    // A second server (or a restart) cannot start it again.
    assert!(
        !store
            .set_deploy_state(d1.id, DeployState::Queued, DeployState::Deploying, None)
            .await
            .expect("again")
    );
    assert!(
        store
            .set_deploy_state(
                d1.id,
                DeployState::Deploying,
                DeployState::Succeeded,
                Some("live")
            )
            .await
            .expect("done")
    );
    let env = store.environment(p.id, "dev").await.expect("env");
    assert_eq!(env.current, Some(d1.id));
    let d1 = store.deployment(d1.id).await.expect("d1");
    assert_eq!(d1.previous_release_id, None);
    assert!(d1.started_at.is_some() && d1.finished_at.is_some());

    // The next one records what ran before it; failing leaves the current one.
    let d2 = store.create_deployment(&deploy(r2.id)).await.expect("d2");
    store
        .set_deploy_state(d2.id, DeployState::Queued, DeployState::Deploying, None)
        .await
        .expect("start");
    store
        .set_deploy_state(
            d2.id,
            DeployState::Deploying,
            DeployState::RolledBack,
            Some("health"),
        )
        .await
        .expect("fail");
    let d2 = store.deployment(d2.id).await.expect("d2");
    assert_eq!(d2.previous_release_id, Some(r1.id));
    assert_eq!(d2.reason.as_deref(), Some("health"));
    assert_eq!(
        store.environment(p.id, "dev").await.expect("env").current,
        Some(d1.id)
    );
    assert_eq!(
        store
            .deployments_in(DeployState::RolledBack)
            .await
            .expect("list")
            .len(),
        1
    );
    let history = store.deployments(p.id, "dev", 10).await.expect("history");
    assert_eq!(
        history.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![d2.id, d1.id]
    );
    assert_eq!(store.live_environments().await.expect("live").len(), 1);
    // The first port stored for the stable URL stays.
    assert_eq!(
        store
            .claim_environment_port(p.id, "dev", 4100, false)
            .await
            .expect("port"),
        4100
    );
    assert_eq!(
        store
            .claim_environment_port(p.id, "dev", 4200, false)
            .await
            .expect("port"),
        4100
    );
    // What the delivery metrics read: ended deployments and jobs, and counts.
    let facts = store
        .deployment_facts(p.id, 0, i64::MAX)
        .await
        .expect("facts");
    let states: Vec<&str> = facts.iter().map(|f| f.state.as_str()).collect();
    assert_eq!(states, vec!["succeeded", "rolled_back"]);
    assert_eq!(
        store
            .deployment_facts(p.id, 0, 1)
            .await
            .expect("none")
            .len(),
        0
    );
    let jobs = store.job_groups(p.id, 0, i64::MAX).await.expect("jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let build = &jobs[0];
    assert_eq!(
        (build.name.as_str(), build.state.as_str(), build.count),
        ("build", "succeeded", 2)
    );
    assert_eq!((build.run_ms.len(), build.queue_ms.len()), (2, 2));
    assert!(
        build
            .run_ms
            .iter()
            .chain(&build.queue_ms)
            .all(|ms| *ms >= 0)
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(counts.runs, vec![("succeeded".to_string(), 2)]);
    assert!(counts.deployments.contains(&("rolled_back".to_string(), 1)));
    assert_eq!(counts.registry_bytes, 0);
    // A port the pipeline names replaces one chosen before.
    let named = store.claim_environment_port(p.id, "dev", 4300, true).await;
    assert_eq!(named.expect("port"), 4300);
}

async fn decisions_are_one_per_person_and_audited(store: Store) {
    let p = store
        .add_project("web", "/git/web", &[], None)
        .await
        .expect("project");
    let run = green_run(&store, p.id).await;
    let r = store
        .create_release(&release(p.id, &run, "1", &[], &[]))
        .await
        .expect("release");
    let d = store
        .create_deployment(&NewDeployment {
            project: p.id,
            environment: "prod",
            release: r.id,
            action: "promote",
            requested_by: "bob",
            awaiting_until: Some(i64::MAX / 2),
        })
        .await
        .expect("deployment");
    assert_eq!(d.state, DeployState::AwaitingApproval);
    store
        .record_decision(d.id, "carol", "approve", "ok")
        .await
        .expect("decide");
    let twice = store
        .record_decision(d.id, "carol", "approve", "again")
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(m)) if m.contains("already decided")));
    store
        .record_decision(d.id, "dave", "reject", "no")
        .await
        .expect("another person");
    let decisions = store.decisions(d.id).await.expect("decisions");
    assert_eq!(decisions.len(), 2);
    store
        .audit(p.id, "carol", "approve", "deployment 1 to prod", "ok")
        .await
        .expect("audit");
    store
        .audit(p.id, "dave", "reject", "deployment 1 to prod", "no")
        .await
        .expect("audit");
    let log = store.audit_log(p.id, 10).await.expect("log");
    assert_eq!(
        log.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        vec!["dave", "carol"]
    );
    // Token identities for four-eyes.
    store.add_token("h", "carol", "admin").await.expect("token");
    store
        .set_token_identity("h", Some("carol@example.com"), &["release-managers".into()])
        .await
        .expect("identity");
    assert_eq!(
        store.token_identity("h").await.expect("identity"),
        (
            Some("carol@example.com".into()),
            vec!["release-managers".to_string()]
        )
    );
}

async fn tokens_belong_to_people_and_claims_to_the_token_that_made_them(store: Store) {
    let person = slipway_store::User {
        name: "carol".into(),
        role: "developer".into(),
        email: Some("Carol@Example.com".into()),
        groups: vec!["release-managers".into()],
    };
    store
        .put_user(&person, slipway_store::NO_PASSWORD, false)
        .await
        .expect("user");
    assert_eq!(
        store
            .user_by_email("carol@example.com")
            .await
            .expect("by email"),
        Some(person.clone())
    );
    for hash in ["laptop", "ci"] {
        store
            .add_token(hash, hash, "developer")
            .await
            .expect("token");
        store.set_token_owner(hash, "carol").await.expect("owner");
        assert_eq!(
            store.token_owner(hash).await.expect("owner"),
            Some(person.clone())
        );
    }
    store.add_token("bot", "bot", "agent").await.expect("token");
    assert_eq!(store.token_owner("bot").await.expect("owner"), None);

    // A claim is held by the token that made it, and only while it runs.
    let p = store
        .add_project("held", "/git/held", &[], None)
        .await
        .expect("project");
    store
        .create_run(
            p.id,
            &NewRun {
                commit: "c0ffee".into(),
                branch: "main".into(),
                trigger: "manual".into(),
                pipeline: String::new(),
                jobs: vec![NewJob {
                    name: "build".into(),
                    ..NewJob::default()
                }],
                ..NewRun::default()
            },
        )
        .await
        .expect("run");
    let job = store
        .claim_job(&slipway_store::Claim {
            worker: "agent:a",
            labels: &[],
            lease_ms: 60_000,
            max_running: None,
        })
        .await
        .expect("claim")
        .expect("a job");
    assert!(
        store
            .hold_job(job.id, "agent:a", "bot")
            .await
            .expect("hold")
    );
    assert!(
        !store
            .hold_job(job.id, "agent:other", "x")
            .await
            .expect("hold")
    );
    assert!(store.held_job(job.id, "bot").await.expect("held").is_some());
    assert!(
        store
            .held_job(job.id, "laptop")
            .await
            .expect("held")
            .is_none()
    );
    assert!(
        store
            .held_job((job.run_id, "build"), "bot")
            .await
            .expect("held")
            .is_some()
    );
    assert!(
        store
            .holds_job_in(Some(job.run_id), None, "bot")
            .await
            .expect("in run")
    );
    assert!(
        store
            .holds_job_in(None, Some(p.id), "bot")
            .await
            .expect("in project")
    );
    assert!(
        !store
            .holds_job_in(None, Some(p.id), "laptop")
            .await
            .expect("in project")
    );
    store
        .finish_job(job.id, "agent:a", State::Succeeded, Some(0), None)
        .await
        .expect("finish");
    assert!(store.held_job(job.id, "bot").await.expect("held").is_none());
    assert!(
        !store
            .holds_job_in(Some(job.run_id), None, "bot")
            .await
            .expect("in run")
    );
}

async fn runs_remember_the_commits_a_branch_built(store: Store) {
    let p = store
        .add_project("built", "/git/built", &[], None)
        .await
        .expect("project");
    for commit in ["a1", "b2"] {
        store
            .create_run(
                p.id,
                &NewRun {
                    commit: commit.into(),
                    branch: "main".into(),
                    trigger: "webhook".into(),
                    ..NewRun::default()
                },
            )
            .await
            .expect("run");
    }
    assert_eq!(
        store
            .recent_commits(p.id, "main", 10)
            .await
            .expect("commits"),
        vec!["b2".to_string(), "a1".to_string()]
    );
    assert!(
        store
            .recent_commits(p.id, "dev", 10)
            .await
            .expect("commits")
            .is_empty()
    );
}
