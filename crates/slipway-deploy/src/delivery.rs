//! Delivery metrics for one environment over a window: the four DORA figures
//! (deployment frequency, lead time for changes, change failure rate, time to
//! restore), and pipeline health (job durations, success ratios, queue time).
//! Computed from the deployment and job records, so they need no bookkeeping
//! of their own; the definitions travel with the figures.

use std::collections::HashMap;

use serde::Serialize;
use slipway_store::{DeploymentFact, JobGroup};

pub const DEFINITIONS: &[(&str, &str)] = &[
    (
        "deployment_frequency",
        "successful deployments of a new release to the environment (rollbacks not counted), and that count per day of the window",
    ),
    (
        "lead_time",
        "for each of those deployments: from the first commit the release brought (its oldest commit since the branch's previous release) to the deployment being live",
    ),
    (
        "change_failure_rate",
        "deployments that failed or were rolled back (by verification, or later by a rollback) over all deployments of a new release that ended",
    ),
    (
        "time_to_restore",
        "from a failure (a failed or rolled-back deployment ending, or a rollback being asked for) to the next successful deployment in the environment",
    ),
    (
        "jobs",
        "per job name: runs that ended, the share that succeeded, and the p50/p95 time from start to end",
    ),
    ("queue", "p50/p95 time a job waited from queued to started"),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub environment: String,
    pub from: i64,
    pub to: i64,
    pub deployment_frequency: Frequency,
    pub lead_time_seconds: Spread,
    pub change_failure_rate: FailureRate,
    pub time_to_restore_seconds: Spread,
    pub jobs: Vec<JobFigures>,
    pub queue_seconds: Spread,
    pub definitions: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frequency {
    pub deployments: usize,
    pub per_day: f64,
}

/// Median, mean and p95 of a set of durations (none when the set is empty).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median: Option<f64>,
    pub mean: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRate {
    pub failures: usize,
    pub deployments: usize,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobFigures {
    pub name: String,
    pub ended: usize,
    pub succeeded: usize,
    pub success_ratio: Option<f64>,
    pub duration_seconds: Spread,
}

const DAY_MS: f64 = 86_400_000.0;

/// The figures of `environment` from deployments and jobs that ended in `[from, to)`.
pub fn compute(
    environment: &str,
    from: i64,
    to: i64,
    deployments: &[DeploymentFact],
    jobs: &[JobGroup],
) -> Delivery {
    let mut here: Vec<&DeploymentFact> = deployments
        .iter()
        .filter(|d| d.environment == environment)
        .collect();
    here.sort_by_key(|d| (d.finished_at, d.id));
    let releases: Vec<&&DeploymentFact> = here.iter().filter(|d| d.action != "rollback").collect();
    let good: Vec<&&&DeploymentFact> = releases.iter().filter(|d| d.state == "succeeded").collect();
    let lead: Vec<f64> = good
        .iter()
        .filter_map(|d| {
            let first = d.commits.iter().filter_map(|c| c.at).min()?;
            Some(seconds(d.finished_at - first))
        })
        .collect();
    let (failures, restores) = failures_and_restores(&here);
    let ended = releases.len();
    Delivery {
        environment: environment.to_string(),
        from,
        to,
        deployment_frequency: Frequency {
            deployments: good.len(),
            per_day: good.len() as f64 / ((to - from) as f64 / DAY_MS).max(f64::MIN_POSITIVE),
        },
        lead_time_seconds: spread(lead),
        change_failure_rate: FailureRate {
            failures,
            deployments: ended,
            rate: (ended > 0).then(|| failures as f64 / ended as f64),
        },
        time_to_restore_seconds: spread(restores),
        jobs: job_figures(jobs),
        queue_seconds: spread(
            jobs.iter()
                .flat_map(|j| j.queue_ms.iter().map(|&ms| seconds(ms)))
                .collect(),
        ),
        definitions: DEFINITIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Failed deployments of a new release, and how long each failure lasted
/// until the next success. A rollback marks the deployment it undid as failed,
/// the failure starting when the rollback was asked for.
fn failures_and_restores(here: &[&DeploymentFact]) -> (usize, Vec<f64>) {
    let mut failures = 0;
    let mut restores = Vec::new();
    // A deployment undone by a rollback counts once, however many rollbacks it took.
    let mut undone_ids = std::collections::HashSet::new();
    let next_success = |after: usize, since: i64| {
        here[after + 1..]
            .iter()
            .find(|d| d.state == "succeeded")
            .map(|d| seconds(d.finished_at - since))
    };
    for (i, d) in here.iter().enumerate() {
        let failed_here = d.action != "rollback" && d.state != "succeeded";
        if failed_here {
            failures += 1;
            restores.extend(next_success(i, d.finished_at));
        }
        if d.action == "rollback" {
            // The release it took the environment away from had failed in production.
            let undone = here[..i]
                .iter()
                .rev()
                .find(|p| p.state == "succeeded")
                .filter(|p| p.action != "rollback")
                .is_some_and(|p| undone_ids.insert(p.id));
            if undone {
                failures += 1;
                if d.state == "succeeded" {
                    restores.push(seconds(d.finished_at - d.created_at));
                } else {
                    restores.extend(next_success(i, d.created_at));
                }
            }
        }
    }
    (failures, restores)
}

fn job_figures(jobs: &[JobGroup]) -> Vec<JobFigures> {
    let mut names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<&JobGroup> = jobs
                .iter()
                .filter(|j| j.name == name && matches!(j.state.as_str(), "succeeded" | "failed"))
                .collect();
            let count = |state: Option<&str>| -> usize {
                mine.iter()
                    .filter(|j| state.is_none_or(|s| j.state == s))
                    .map(|j| usize::try_from(j.count).unwrap_or_default())
                    .sum()
            };
            let (ended, succeeded) = (count(None), count(Some("succeeded")));
            JobFigures {
                name: name.to_string(),
                ended,
                succeeded,
                success_ratio: (ended > 0).then(|| succeeded as f64 / ended as f64),
                duration_seconds: spread(
                    mine.iter()
                        .flat_map(|j| j.run_ms.iter().map(|&ms| seconds(ms)))
                        .collect(),
                ),
            }
        })
        .collect()
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Median (the middle value, or the mean of the two middle ones), mean, and
/// p95 by nearest rank.
fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return Spread {
            count: 0,
            median: None,
            mean: None,
            p95: None,
        };
    }
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Spread {
        count: n,
        median: Some(median),
        mean: Some(values.iter().sum::<f64>() / n as f64),
        p95: Some(values[rank - 1]),
    }
}

impl crate::Deployer {
    /// The figures of an environment (default: the production one, else the
    /// last in promotion order) over the last `days` days.
    pub async fn delivery(
        &self,
        project: &slipway_store::Project,
        environment: Option<&str>,
        days: u32,
    ) -> crate::Result<Delivery> {
        let environment = match environment {
            Some(e) => e.to_string(),
            None => self.production_environment(project).await?,
        };
        let key = (project.id.0, environment.clone(), days);
        let generation = self
            .inner
            .engine
            .history
            .load(std::sync::atomic::Ordering::Acquire);
        let now = slipway_store::now_ms();
        // Nothing ended since, and the window moved less than a minute.
        let cached = |figures: &HashMap<_, (u64, i64, Delivery)>| {
            figures
                .get(&key)
                .filter(|(g, at, _)| *g == generation && now - at < 60_000)
                .map(|(_, _, d)| d.clone())
        };
        if let Some(hit) = cached(&self.inner.figures.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(hit);
        }
        let to = now + 1;
        let from = to - i64::from(days.max(1)) * 86_400_000;
        let deployments = self.store().deployment_facts(project.id, from, to).await?;
        let jobs = self.store().job_groups(project.id, from, to).await?;
        let figures = compute(&environment, from, to, &deployments, &jobs);
        self.inner
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (generation, now, figures.clone()));
        Ok(figures)
    }

    async fn production_environment(
        &self,
        project: &slipway_store::Project,
    ) -> crate::Result<String> {
        let envs = self.store().environments(project.id).await?;
        if let Some(latest) = self.store().releases(project.id, 1).await?.first()
            && let Some(p) = self.inner.engine.pipeline(latest.run_id).await?
            && let Some(prod) = p.environments.iter().find(|e| e.production)
        {
            return Ok(prod.name.clone());
        }
        envs.last().map(|e| e.name.clone()).ok_or_else(|| {
            crate::DeployError::Invalid(format!(
                "{} has no environment yet; delivery metrics need deployments",
                project.name
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_store::ReleaseCommit;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_800_000_000_000;

    fn commit(at: i64) -> ReleaseCommit {
        ReleaseCommit {
            sha: format!("c{at}"),
            author: "A".into(),
            email: "a@example.com".into(),
            message: "m".into(),
            at: Some(at),
            ..ReleaseCommit::default()
        }
    }

    fn deployment(
        id: i64,
        env: &str,
        action: &str,
        state: &str,
        created: i64,
        finished: i64,
        commits: Vec<ReleaseCommit>,
    ) -> DeploymentFact {
        DeploymentFact {
            id,
            environment: env.into(),
            release_id: id,
            action: action.into(),
            state: state.into(),
            created_at: created,
            finished_at: finished,
            commits,
        }
    }

    /// A week of prod, with every figure worked out by hand:
    /// - d1 (day 0, 10:00) release with commits at 08:00 and 09:00 → lead 2 h.
    /// - d2 (day 1, 12:00) fails verification (rolled back): failure 1.
    /// - d3 (day 1, 15:00) succeeds, commits at 11:00 → lead 4 h; restores d2 in 3 h.
    /// - d4 (day 2, 10:00) succeeds, commit at 09:30 → lead 0.5 h …
    /// - d5 (day 2, 11:00–11:00:30) a rollback undoes d4: failure 2, restored in 30 s.
    /// - d6 (day 3, 09:00) staging only: not counted for prod.
    ///
    /// So: 3 successful deployments of a release in 7 days (3/7 per day);
    /// lead times 0.5 h, 2 h, 4 h (median 2 h, mean 6.5/3 h); 2 failures
    /// of 4 deployments of a release (0.5); restores 30 s and 3 h.
    #[test]
    fn the_dora_figures_of_a_known_week() {
        let day = 24 * H;
        let history = vec![
            deployment(
                1,
                "prod",
                "promote",
                "succeeded",
                T0 + 9 * H,
                T0 + 10 * H,
                vec![commit(T0 + 8 * H), commit(T0 + 9 * H)],
            ),
            deployment(
                2,
                "prod",
                "promote",
                "rolled_back",
                T0 + day + 11 * H,
                T0 + day + 12 * H,
                vec![commit(T0 + day + 10 * H)],
            ),
            deployment(
                3,
                "prod",
                "promote",
                "succeeded",
                T0 + day + 14 * H,
                T0 + day + 15 * H,
                vec![commit(T0 + day + 11 * H)],
            ),
            deployment(
                4,
                "prod",
                "promote",
                "succeeded",
                T0 + 2 * day + 9 * H,
                T0 + 2 * day + 10 * H,
                vec![commit(T0 + 2 * day + 9 * H + H / 2)],
            ),
            deployment(
                5,
                "prod",
                "rollback",
                "succeeded",
                T0 + 2 * day + 11 * H,
                T0 + 2 * day + 11 * H + 30_000,
                vec![],
            ),
            deployment(
                6,
                "staging",
                "deploy",
                "succeeded",
                T0 + 3 * day + 8 * H,
                T0 + 3 * day + 9 * H,
                vec![commit(T0)],
            ),
        ];
        let group =
            |name: &str, state: &str, count, run_ms: Vec<i64>, queue_ms: Vec<i64>| JobGroup {
                name: name.into(),
                state: state.into(),
                count,
                run_ms,
                queue_ms,
            };
        let jobs = vec![
            group("build", "succeeded", 1, vec![60_000], vec![1_000]),
            group("build", "failed", 1, vec![120_000], vec![3_000]),
            group("test", "succeeded", 1, vec![30_000], vec![2_000]),
            group("test", "skipped", 1, vec![], vec![]),
        ];
        let d = compute("prod", T0, T0 + 7 * day, &history, &jobs);
        assert_eq!(d.deployment_frequency.deployments, 3);
        assert!((d.deployment_frequency.per_day - 3.0 / 7.0).abs() < 1e-9);
        assert_eq!(d.lead_time_seconds.count, 3);
        assert_eq!(d.lead_time_seconds.median, Some(2.0 * 3600.0));
        assert!((d.lead_time_seconds.mean.unwrap_or_default() - 6.5 * 3600.0 / 3.0).abs() < 1e-6);
        assert_eq!(d.change_failure_rate.failures, 2);
        assert_eq!(d.change_failure_rate.deployments, 4);
        assert_eq!(d.change_failure_rate.rate, Some(0.5));
        assert_eq!(d.time_to_restore_seconds.count, 2);
        assert_eq!(
            d.time_to_restore_seconds.median,
            Some((30.0 + 3.0 * 3600.0) / 2.0)
        );
        let build = &d.jobs[0];
        assert_eq!(
            (build.name.as_str(), build.ended, build.succeeded),
            ("build", 2, 1)
        );
        assert_eq!(build.success_ratio, Some(0.5));
        assert_eq!(build.duration_seconds.median, Some(90.0));
        assert_eq!(build.duration_seconds.p95, Some(120.0));
        let test = &d.jobs[1];
        assert_eq!((test.ended, test.success_ratio), (1, Some(1.0)));
        // Queue: 1 s, 3 s, 2 s → median 2 s, p95 3 s (the skipped job never started).
        assert_eq!(d.queue_seconds.median, Some(2.0));
        assert_eq!(d.queue_seconds.p95, Some(3.0));
    }

    /// A rollback that fails and is asked for again undoes one release: one failure.
    #[test]
    fn a_retried_rollback_counts_its_release_once() {
        let history = vec![
            deployment(1, "prod", "deploy", "succeeded", T0, T0 + H, vec![]),
            deployment(
                2,
                "prod",
                "deploy",
                "succeeded",
                T0 + 2 * H,
                T0 + 3 * H,
                vec![],
            ),
            deployment(
                3,
                "prod",
                "rollback",
                "rolled_back",
                T0 + 4 * H,
                T0 + 4 * H + 60_000,
                vec![],
            ),
            deployment(
                4,
                "prod",
                "rollback",
                "succeeded",
                T0 + 5 * H,
                T0 + 5 * H + 60_000,
                vec![],
            ),
        ];
        let d = compute("prod", T0, T0 + 24 * H, &history, &[]);
        assert_eq!(d.change_failure_rate.failures, 1);
        assert_eq!(d.change_failure_rate.deployments, 2);
        assert_eq!(d.change_failure_rate.rate, Some(0.5));
        // From the first rollback being asked for to the next success.
        assert_eq!(d.time_to_restore_seconds.median, Some(3600.0 + 60.0));
    }

    #[test]
    fn an_empty_window_has_no_figures_rather_than_zeros() {
        let d = compute("prod", T0, T0 + H, &[], &[]);
        assert_eq!(d.deployment_frequency.deployments, 0);
        assert_eq!(d.lead_time_seconds.median, None);
        assert_eq!(d.change_failure_rate.rate, None);
        assert!(d.jobs.is_empty());
    }
}
