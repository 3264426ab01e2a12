//! The pages that trace and measure: a release's chain from commit to
//! environments, the registry, and delivery metrics with charts.

use askama::Template;
use axum::extract::{Path, Query, State};

use serde::Deserialize;

use super::session::Viewer;
use super::{Page, PageResult, chart, fail, project_of, render};
use crate::AppState;

pub struct GateBadge {
    pub job: String,
    pub status: String,
}

pub struct DeploymentLine {
    pub environment: String,
    pub state: String,
    pub by: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "release.html")]
pub struct ReleasePage {
    user: String,
    role: String,
    csrf: String,
    project: String,
    version: String,
    commit: String,
    branch: String,
    author: String,
    message: String,
    commits: Vec<String>,
    run: i64,
    gates: Vec<GateBadge>,
    images: Vec<String>,
    deployments: Vec<DeploymentLine>,
}

pub async fn release(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, version)): Path<(String, String)>,
) -> PageResult {
    let p = project_of(&state, &name).await?;
    let store = &state.engine.store;
    let r = store
        .release_by_version(p.id, &version)
        .await
        .map_err(fail)?;
    let run = store.run(r.run_id).await.map_err(fail)?;
    let gates = store
        .gates_of(run.id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|g| GateBadge {
            job: g.job,
            status: g.status,
        })
        .collect();
    let deployments = store
        .deployments_of_release(r.id)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|d| DeploymentLine {
            environment: d.environment,
            state: d.state.to_string(),
            by: d.requested_by,
            reason: d.reason.unwrap_or_default(),
        })
        .collect();
    let page = Page::of(&viewer);
    render(ReleasePage {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        project: p.name,
        version: r.version,
        commit: r.commit,
        branch: r.branch,
        author: r.author,
        message: r.message,
        commits: r
            .commits
            .iter()
            .map(|c| {
                format!(
                    "{} {} — {}",
                    &c.sha[..c.sha.len().min(12)],
                    c.message,
                    c.author
                )
            })
            .collect(),
        run: run.number,
        gates,
        images: r
            .images
            .iter()
            .map(|i| format!("{}@{}", i.reference, i.digest))
            .collect(),
        deployments,
    })
}

pub struct TagRow {
    pub image: String,
    pub tag: String,
    pub digest: String,
    pub size: String,
}

pub struct RepoView {
    pub name: String,
    pub kind: String,
    pub policy: String,
    pub tags: Vec<TagRow>,
}

pub struct PromotionRow {
    pub image: String,
    pub from: String,
    pub to: String,
    pub tag: String,
    pub by: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "registry.html")]
pub struct RegistryPage {
    user: String,
    role: String,
    csrf: String,
    repositories: Vec<RepoView>,
    promotions: Vec<PromotionRow>,
}

pub async fn registry(State(state): State<AppState>, viewer: Viewer) -> PageResult {
    let store = &state.registry.store;
    let mut repositories = Vec::new();
    let mut names = Vec::new();
    for repo in store.repositories().await.map_err(fail)? {
        let mut tags = Vec::new();
        for (_, image) in store.images(Some(&repo.name)).await.map_err(fail)? {
            for (tag, digest, _) in store.tag_digests(&repo.name, &image).await.map_err(fail)? {
                let size = store
                    .manifest(&repo.name, &image, &digest)
                    .await
                    .map_err(fail)?
                    .map_or(String::new(), |m| format!("{} B manifest", m.size));
                tags.push(TagRow {
                    image: image.clone(),
                    tag,
                    digest,
                    size,
                });
            }
            names.push(image);
        }
        repositories.push(RepoView {
            name: repo.name,
            kind: repo.kind.as_str().into(),
            policy: repo.policy.as_str().into(),
            tags,
        });
    }
    names.sort();
    names.dedup();
    let mut promotions = Vec::new();
    for image in names {
        for p in store.promotions(&image, None).await.map_err(fail)? {
            promotions.push(PromotionRow {
                image: format!("{}@{}", p.image, p.digest),
                from: p.from_repo,
                to: p.to_repo,
                tag: p.tag.unwrap_or_default(),
                by: p.promoted_by,
                reason: p.reason.unwrap_or_default(),
            });
        }
    }
    let page = Page::of(&viewer);
    render(RegistryPage {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        repositories,
        promotions,
    })
}

#[derive(Template)]
#[template(path = "metrics.html")]
pub struct MetricsPage {
    user: String,
    role: String,
    csrf: String,
    project: String,
    environment: String,
    days: u32,
    figures: Vec<(String, String)>,
    per_day: String,
    durations: String,
    definitions: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct Window {
    environment: Option<String>,
    days: Option<u32>,
}

fn seconds(v: Option<f64>) -> String {
    v.map_or("—".into(), |s| {
        if s >= 3600.0 {
            format!("{:.1} h", s / 3600.0)
        } else if s >= 60.0 {
            format!("{:.1} min", s / 60.0)
        } else {
            format!("{s:.1} s")
        }
    })
}

pub async fn metrics(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(w): Query<Window>,
) -> PageResult {
    let p = project_of(&state, &name).await?;
    let days = w.days.unwrap_or(30).clamp(1, 365);
    let d = state
        .deployer
        .delivery(&p, w.environment.as_deref(), days)
        .await
        .map_err(fail)?;
    let figures = figures(&d);
    let per_day = deployments_per_day(&state, &p, &d).await?;
    let durations = job_durations(&d);
    let page = Page::of(&viewer);
    render(MetricsPage {
        user: page.user,
        role: page.role,
        csrf: page.csrf,
        project: p.name,
        environment: d.environment.clone(),
        days,
        figures,
        per_day: chart::bars(
            &per_day,
            &chart::Axes {
                x: "day of the window",
                y: "deployments",
                unit: "deployments",
                whole: true,
            },
        ),
        durations: chart::bars(
            &durations,
            &chart::Axes {
                x: "job, percentile",
                y: "seconds",
                unit: "s",
                whole: false,
            },
        ),
        definitions: d.definitions.clone(),
    })
}

/// The delivery figures at the top of the metrics page, as label and text.
fn figures(d: &slipway_deploy::Delivery) -> Vec<(String, String)> {
    vec![
        (
            "Deployment frequency".into(),
            format!(
                "{} ({:.2} a day)",
                d.deployment_frequency.deployments, d.deployment_frequency.per_day
            ),
        ),
        (
            "Lead time for changes".into(),
            format!(
                "median {}, mean {}",
                seconds(d.lead_time_seconds.median),
                seconds(d.lead_time_seconds.mean)
            ),
        ),
        (
            "Change failure rate".into(),
            format!(
                "{} ({} of {})",
                d.change_failure_rate
                    .rate
                    .map_or("—".into(), |r| format!("{:.0}%", r * 100.0)),
                d.change_failure_rate.failures,
                d.change_failure_rate.deployments
            ),
        ),
        (
            "Time to restore".into(),
            format!("median {}", seconds(d.time_to_restore_seconds.median)),
        ),
        (
            "Queue time".into(),
            format!(
                "p50 {}, p95 {}",
                seconds(d.queue_seconds.median),
                seconds(d.queue_seconds.p95)
            ),
        ),
    ]
}

/// Deployments per day of the window, from the environment's history.
async fn deployments_per_day(
    state: &AppState,
    p: &slipway_store::Project,
    d: &slipway_deploy::Delivery,
) -> Result<Vec<(String, f64)>, axum::response::Response> {
    let mut per_day: Vec<(String, f64)> = Vec::new();
    for dep in state
        .engine
        .store
        .deployments(p.id, &d.environment, 1000)
        .await
        .map_err(fail)?
    {
        // As the frequency figure counts: releases going live, not rollbacks.
        let outside = dep.finished_at.is_none_or(|f| f < d.from || f >= d.to);
        if dep.state != slipway_store::DeployState::Succeeded || dep.action == "rollback" || outside
        {
            continue;
        }
        let day = ((dep.finished_at.unwrap_or_default() - d.from) / 86_400_000) + 1;
        let label = format!("day {day}");
        match per_day.iter_mut().find(|(l, _)| *l == label) {
            Some(entry) => entry.1 += 1.0,
            None => per_day.push((label, 1.0)),
        }
    }
    per_day.sort_by_key(|(l, _)| {
        l.trim_start_matches("day ")
            .parse::<i64>()
            .unwrap_or_default()
    });
    Ok(per_day)
}

/// Each job's median and 95th-percentile duration, as chart bars.
fn job_durations(d: &slipway_deploy::Delivery) -> Vec<(String, f64)> {
    d.jobs
        .iter()
        .flat_map(|j| {
            [
                (
                    format!("{} p50", j.name),
                    j.duration_seconds.median.unwrap_or_default(),
                ),
                (
                    format!("{} p95", j.name),
                    j.duration_seconds.p95.unwrap_or_default(),
                ),
            ]
        })
        .collect()
}
