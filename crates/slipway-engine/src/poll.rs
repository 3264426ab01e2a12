//! Background loops of the server: polling remotes for new commits, and
//! re-queueing jobs whose worker stopped heartbeating.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::trigger::builds_branch;
use crate::{Engine, Result, Target};

/// Looks at every polled project whose interval has passed, once a second.
pub async fn run_poller(engine: Engine, shutdown: CancellationToken) {
    let mut last: HashMap<i64, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let Ok(projects) = engine.store.projects().await else {
            continue;
        };
        for project in projects {
            let Some(every) = project.poll_seconds.and_then(|s| u64::try_from(s).ok()) else {
                continue;
            };
            let due = last
                .get(&project.id.0)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(every));
            if due {
                last.insert(project.id.0, Instant::now());
                if let Err(e) = poll_once(&engine, &project).await {
                    tracing::warn!(project = %project.name, "poll failed: {e}");
                }
            }
        }
    }
}

/// One look at a project's remote: a run for each built branch whose head moved.
pub async fn poll_once(engine: &Engine, project: &slipway_store::Project) -> Result<usize> {
    let mut started = 0;
    let creds = engine.git_credentials(project).await?;
    let heads = slipway_git::remote_heads(&project.git_url, creds.as_ref())
        .await
        .map_err(|e| crate::trigger::fetch_failed(project, e))?;
    let known = engine.store.branch_heads(project.id).await?;
    for (branch, commit) in heads {
        if !builds_branch(project, &branch) {
            continue;
        }
        if known.iter().any(|(b, c)| *b == branch && *c == commit) {
            continue;
        }
        // Remember the head only once its run exists: a failed trigger is retried next poll.
        engine
            .trigger(
                project,
                Target::Commit {
                    branch: branch.clone(),
                    commit: commit.clone(),
                },
                "poll",
            )
            .await?;
        engine
            .store
            .set_branch_head(project.id, &branch, &commit)
            .await?;
        started += 1;
    }
    Ok(started)
}

/// Re-queues jobs whose lease ran out, every `every`, and once at once (after
/// a restart, jobs the dead process held come back as soon as their lease ends).
pub async fn run_reaper(engine: Engine, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // A crash between a job's end and its run's settlement leaves the run
        // behind: settling is idempotent, so bring every open run up to date.
        if let Ok(runs) = engine.store.unfinished_runs().await {
            for run in runs {
                if let Err(e) = engine.store.settle_run(run.id).await {
                    tracing::warn!(run = run.id.0, "cannot settle the run: {e}");
                }
            }
        }
        match engine.store.requeue_expired().await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(
                    "re-queued {} jobs whose worker stopped heartbeating",
                    ids.len()
                );
                engine.wake_workers();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot re-queue expired jobs: {e}"),
        }
    }
}
