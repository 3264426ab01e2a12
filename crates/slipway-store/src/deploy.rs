//! Releases, environments, deployments, their decisions and the audit log.
//!
//! A deployment moves through [`DeployState`]; every move is a compare-and-set
//! so two servers (or a server and its restart) never both act on one.

use std::fmt;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{ProjectId, Result, RunId, Store, StoreError, now_ms};

/// An image a release carries: where the run pushed it, and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReleaseImage {
    pub reference: String,
    pub digest: String,
}

/// A commit a release brings since the release before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReleaseCommit {
    pub sha: String,
    pub author: String,
    pub email: String,
    pub message: String,
    /// When it was committed (ms since the epoch), for lead times.
    #[serde(default)]
    pub at: Option<i64>,
    /// Who made the commit: `git commit --author` names anyone as the author,
    /// so four-eyes excludes the committer too. Empty in releases made
    /// before it was recorded.
    #[serde(default)]
    pub committer: String,
    #[serde(default)]
    pub committer_email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub id: i64,
    pub project_id: ProjectId,
    pub version: String,
    pub run_id: RunId,
    pub commit: String,
    pub branch: String,
    /// The release commit's author (`Name <email>`) and subject line.
    pub author: String,
    pub message: String,
    pub images: Vec<ReleaseImage>,
    pub commits: Vec<ReleaseCommit>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub project: ProjectId,
    pub version: &'a str,
    pub run: RunId,
    pub commit: &'a str,
    pub branch: &'a str,
    pub author: &'a str,
    pub message: &'a str,
    pub images: &'a [ReleaseImage],
    pub commits: &'a [ReleaseCommit],
}

/// Where a deployment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployState {
    /// Waiting at a decision point for approvals.
    AwaitingApproval,
    Queued,
    Deploying,
    Succeeded,
    /// Verification failed and the environment went back to what it ran before.
    RolledBack,
    /// It failed and there was nothing to go back to.
    Failed,
    Rejected,
    Expired,
    Canceled,
}

impl DeployState {
    pub const ALL: [DeployState; 9] = [
        DeployState::AwaitingApproval,
        DeployState::Queued,
        DeployState::Deploying,
        DeployState::Succeeded,
        DeployState::RolledBack,
        DeployState::Failed,
        DeployState::Rejected,
        DeployState::Expired,
        DeployState::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeployState::AwaitingApproval => "awaiting_approval",
            DeployState::Queued => "queued",
            DeployState::Deploying => "deploying",
            DeployState::Succeeded => "succeeded",
            DeployState::RolledBack => "rolled_back",
            DeployState::Failed => "failed",
            DeployState::Rejected => "rejected",
            DeployState::Expired => "expired",
            DeployState::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<DeployState> {
        DeployState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        !matches!(
            self,
            DeployState::AwaitingApproval | DeployState::Queued | DeployState::Deploying
        )
    }
}

impl fmt::Display for DeployState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub project_id: ProjectId,
    pub environment: String,
    pub release_id: i64,
    /// `deploy` (a new release arrived), `promote`, `rollback` or `redeploy`.
    pub action: String,
    pub state: DeployState,
    pub requested_by: String,
    pub reason: Option<String>,
    /// What the environment ran when this one started: where a rollback goes.
    pub previous_release_id: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    pub project: ProjectId,
    pub environment: &'a str,
    pub release: i64,
    pub action: &'a str,
    pub requested_by: &'a str,
    /// `Some(expiry)` when it must wait for approvals first.
    pub awaiting_until: Option<i64>,
}

/// An environment as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentRecord {
    pub project_id: ProjectId,
    pub name: String,
    pub position: i64,
    /// The port of its stable URL on the server.
    pub port: Option<i64>,
    /// The last deployment that succeeded: what it runs.
    pub current: Option<i64>,
    /// `none` (nothing deployed), `healthy`, `unhealthy`, `deploying`.
    pub health: String,
    pub health_note: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub who: String,
    /// `approve` or `reject`.
    pub decision: String,
    pub comment: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
}

const RELEASE_COLUMNS: &str = "id, project_id, version, run_id, commit_sha, branch, author, message, images, commits, created_at";
const DEPLOYMENT_COLUMNS: &str = "id, project_id, environment, release_id, action, state, requested_by, reason, previous_release_id, expires_at, created_at, started_at, finished_at";
const ENVIRONMENT_COLUMNS: &str =
    "project_id, name, position, port, current, health, health_note, updated_at";

fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn release(row: &AnyRow) -> Result<Release> {
    Ok(Release {
        id: row.try_get("id")?,
        project_id: ProjectId(row.try_get("project_id")?),
        version: row.try_get("version")?,
        run_id: RunId(row.try_get("run_id")?),
        commit: row.try_get("commit_sha")?,
        branch: row.try_get("branch")?,
        author: row.try_get("author")?,
        message: row.try_get("message")?,
        images: json(row, "images")?,
        commits: json(row, "commits")?,
        created_at: row.try_get("created_at")?,
    })
}

fn deployment(row: &AnyRow) -> Result<Deployment> {
    let state: String = row.try_get("state")?;
    Ok(Deployment {
        id: row.try_get("id")?,
        project_id: ProjectId(row.try_get("project_id")?),
        environment: row.try_get("environment")?,
        release_id: row.try_get("release_id")?,
        action: row.try_get("action")?,
        state: DeployState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown deployment state `{state}`")))?,
        requested_by: row.try_get("requested_by")?,
        reason: row.try_get("reason")?,
        previous_release_id: row.try_get("previous_release_id")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn environment(row: &AnyRow) -> Result<EnvironmentRecord> {
    Ok(EnvironmentRecord {
        project_id: ProjectId(row.try_get("project_id")?),
        name: row.try_get("name")?,
        position: row.try_get("position")?,
        port: row.try_get("port")?,
        current: row.try_get("current")?,
        health: row.try_get("health")?,
        health_note: row.try_get("health_note")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Releases.
impl Store {
    /// Succeeded runs not yet looked at for a release, oldest first.
    pub async fn undelivered_runs(&self) -> Result<Vec<RunId>> {
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE delivered = 0 AND state = 'succeeded' ORDER BY id LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(RunId(r.try_get("id")?))).collect()
    }

    /// Marks a run as looked at; `false` when someone else already did.
    pub async fn mark_delivered(&self, run: RunId) -> Result<bool> {
        let done = sqlx::query("UPDATE runs SET delivered = 1 WHERE id = $1 AND delivered = 0")
            .bind(run.0)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a release; a run makes at most one, and a version is never reused.
    pub async fn create_release(&self, new: &NewRelease<'_>) -> Result<Release> {
        let row = sqlx::query(sql(format!(
            "INSERT INTO releases (project_id, version, run_id, commit_sha, branch, author, message, images, commits, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {RELEASE_COLUMNS}"
        )))
        .bind(new.project.0)
        .bind(new.version)
        .bind(new.run.0)
        .bind(new.commit)
        .bind(new.branch)
        .bind(new.author)
        .bind(new.message)
        .bind(to_json(&new.images))
        .bind(to_json(&new.commits))
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                "release {} already exists (a version never moves: change `release.version` so each run makes its own)",
                new.version
            )),
            e => e.into(),
        })?;
        release(&row)
    }

    pub async fn release(&self, id: i64) -> Result<Release> {
        let row = sqlx::query(sql(format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no release {id}")))?;
        release(&row)
    }

    /// The release a run made, if it made one.
    pub async fn release_of_run(&self, run: RunId) -> Result<Option<Release>> {
        let row = sqlx::query(sql(format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE run_id = $1"
        )))
        .bind(run.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(release).transpose()
    }

    pub async fn release_by_version(&self, project: ProjectId, version: &str) -> Result<Release> {
        let row = sqlx::query(sql(format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE project_id = $1 AND version = $2"
        )))
        .bind(project.0)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no release {version}; `slipway releases PROJECT` lists them"
            ))
        })?;
        release(&row)
    }

    /// A project's releases, newest first.
    pub async fn releases(&self, project: ProjectId, limit: i64) -> Result<Vec<Release>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE project_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(project.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(release).collect()
    }

    /// The newest release of a branch before `before` (a release id), for the commits since it.
    pub async fn release_before(
        &self,
        project: ProjectId,
        branch: &str,
        before: i64,
    ) -> Result<Option<Release>> {
        let row = sqlx::query(sql(format!(
            "SELECT {RELEASE_COLUMNS} FROM releases WHERE project_id = $1 AND branch = $2 AND id < $3 ORDER BY id DESC LIMIT 1"
        )))
        .bind(project.0)
        .bind(branch)
        .bind(before)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(release).transpose()
    }
}

/// Environments.
impl Store {
    /// Makes sure the environment has a row (its place in the promotion order kept up to date).
    pub async fn ensure_environment(
        &self,
        project: ProjectId,
        name: &str,
        position: i64,
    ) -> Result<EnvironmentRecord> {
        sqlx::query("INSERT INTO environments (project_id, name, position, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, name) DO UPDATE SET position = excluded.position")
            .bind(project.0)
            .bind(name)
            .bind(position)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        self.environment(project, name).await
    }

    pub async fn environment(&self, project: ProjectId, name: &str) -> Result<EnvironmentRecord> {
        let row = sqlx::query(sql(format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE project_id = $1 AND name = $2"
        )))
        .bind(project.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no environment `{name}` yet: it appears with the first release whose pipeline names it"
            ))
        })?;
        environment(&row)
    }

    /// A project's environments in promotion order.
    pub async fn environments(&self, project: ProjectId) -> Result<Vec<EnvironmentRecord>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE project_id = $1 ORDER BY position, name"
        )))
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(environment).collect()
    }

    /// Every environment that runs something (to bring back after a restart).
    pub async fn live_environments(&self) -> Result<Vec<EnvironmentRecord>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE current IS NOT NULL ORDER BY project_id, position"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(environment).collect()
    }

    /// Keeps the port of an environment's stable URL: the first port stored
    /// wins, unless `configured` (the pipeline names it).
    pub async fn claim_environment_port(
        &self,
        project: ProjectId,
        name: &str,
        port: i64,
        configured: bool,
    ) -> Result<i64> {
        sqlx::query("UPDATE environments SET port = $1 WHERE project_id = $2 AND name = $3 AND (port IS NULL OR $4)")
            .bind(port)
            .bind(project.0)
            .bind(name)
            .bind(configured)
            .execute(&self.pool)
            .await?;
        let env = self.environment(project, name).await?;
        env.port
            .ok_or_else(|| StoreError::Corrupt(format!("environment {name} has no port")))
    }

    pub async fn set_health(
        &self,
        project: ProjectId,
        name: &str,
        health: &str,
        note: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE environments SET health = $1, health_note = $2, updated_at = $3 WHERE project_id = $4 AND name = $5")
            .bind(health)
            .bind(note)
            .bind(now_ms())
            .bind(project.0)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Deployments and decisions.
impl Store {
    pub async fn create_deployment(&self, new: &NewDeployment<'_>) -> Result<Deployment> {
        let state = match new.awaiting_until {
            Some(_) => DeployState::AwaitingApproval,
            None => DeployState::Queued,
        };
        let row = sqlx::query(sql(format!(
            "INSERT INTO deployments (project_id, environment, release_id, action, state, requested_by, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {DEPLOYMENT_COLUMNS}"
        )))
        .bind(new.project.0)
        .bind(new.environment)
        .bind(new.release)
        .bind(new.action)
        .bind(state.as_str())
        .bind(new.requested_by)
        .bind(new.awaiting_until)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        deployment(&row)
    }

    pub async fn deployment(&self, id: i64) -> Result<Deployment> {
        let row = sqlx::query(sql(format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no deployment {id}")))?;
        deployment(&row)
    }

    /// An environment's deployments, newest first.
    pub async fn deployments(
        &self,
        project: ProjectId,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE project_id = $1 AND environment = $2 ORDER BY id DESC LIMIT $3"
        )))
        .bind(project.0)
        .bind(environment)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment).collect()
    }

    /// Every deployment of a release, in every environment.
    pub async fn deployments_of_release(&self, release: i64) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE release_id = $1 ORDER BY id"
        )))
        .bind(release)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment).collect()
    }

    /// Deployments in one state over every project, oldest first.
    pub async fn deployments_in(&self, state: DeployState) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE state = $1 ORDER BY id"
        )))
        .bind(state.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deployment).collect()
    }

    /// Moves a deployment from `from` to `to` (compare-and-set). Starting one
    /// records what the environment ran before; a success makes it the
    /// environment's current deployment in the same transaction.
    pub async fn set_deploy_state(
        &self,
        id: i64,
        from: DeployState,
        to: DeployState,
        reason: Option<&str>,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let started = (to == DeployState::Deploying).then_some(now);
        let finished = to.is_final().then_some(now);
        let done = sqlx::query("UPDATE deployments SET state = $1, reason = COALESCE($2, reason), started_at = COALESCE($3, started_at), finished_at = $4 WHERE id = $5 AND state = $6")
            .bind(to.as_str())
            .bind(reason)
            .bind(started)
            .bind(finished)
            .bind(id)
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        if to == DeployState::Deploying {
            sqlx::query("UPDATE deployments SET previous_release_id = (SELECT d.release_id FROM environments e JOIN deployments d ON d.id = e.current WHERE e.project_id = deployments.project_id AND e.name = deployments.environment) WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if to == DeployState::Succeeded {
            sqlx::query("UPDATE environments SET current = $1, updated_at = $2 WHERE (project_id, name) = (SELECT project_id, environment FROM deployments WHERE id = $1)")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels deployments of releases older than `release` still waiting for
    /// a decision in an environment; returns how many.
    pub async fn supersede_pending(
        &self,
        project: ProjectId,
        environment: &str,
        release: i64,
        reason: &str,
    ) -> Result<u64> {
        let done = sqlx::query("UPDATE deployments SET state = 'canceled', reason = $1, finished_at = $2 WHERE project_id = $3 AND environment = $4 AND state = 'awaiting_approval' AND release_id < $5")
            .bind(reason)
            .bind(now_ms())
            .bind(project.0)
            .bind(environment)
            .bind(release)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records an approval or a rejection; one per person per deployment.
    pub async fn record_decision(
        &self,
        deployment: i64,
        who: &str,
        decision: &str,
        comment: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO decisions (deployment_id, who, decision, comment, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(deployment)
            .bind(who)
            .bind(decision)
            .bind(comment)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(
                    format!("`{who}` has already decided on deployment {deployment}"),
                ),
                e => e.into(),
            })?;
        Ok(())
    }

    pub async fn decisions(&self, deployment: i64) -> Result<Vec<Decision>> {
        let rows = sqlx::query("SELECT who, decision, comment, at FROM decisions WHERE deployment_id = $1 ORDER BY at, who")
            .bind(deployment)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Decision {
                    who: r.try_get("who")?,
                    decision: r.try_get("decision")?,
                    comment: r.try_get("comment")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}

/// The audit log.
impl Store {
    pub async fn audit(
        &self,
        project: ProjectId,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO audit_log (project_id, at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(project.0)
            .bind(now_ms())
            .bind(actor)
            .bind(action)
            .bind(subject)
            .bind(detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A project's audit log, newest first.
    pub async fn audit_log(&self, project: ProjectId, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT id, at, actor, action, subject, detail FROM audit_log WHERE project_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(project.0)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}
