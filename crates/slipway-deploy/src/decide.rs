//! Asking for deployments and deciding on them: deploy a version, promote
//! what one environment runs to the next, roll back; approvals and rejections
//! at decision points, with four-eyes; every decision in the audit log.

use std::sync::Arc;

use serde::Serialize;
use slipway_git::Mirror;
use slipway_spec::{Environment, Pipeline, Source};
use slipway_store::{
    DeployState, Deployment, NewDeployment, Project, Release, ReleaseCommit, Run, now_ms,
};

use crate::{DeployError, Deployer, Result};

/// Who is asking or deciding, as their token or session says.
#[derive(Debug, Clone)]
pub struct Approver {
    /// The person's user name, or a machine token's name.
    pub name: String,
    /// `viewer`, `developer` or `admin`.
    pub role: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// Whether `name` is a person (a user): only people approve, and each
    /// person once, whichever of their tokens they use.
    pub person: bool,
}

/// What someone asks of an environment.
#[derive(Debug, Clone)]
pub enum Request {
    /// Deploy this version (a manual environment, or a redeploy).
    Deploy { version: String },
    /// Deploy what `from` runs now (healthy) to this environment.
    Promote { from: String },
    /// Go back to the release before the current one, or to `to`.
    Rollback { to: Option<String> },
}

/// Who may still approve a pending deployment, for people and the UI.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// Who may approve, in words ("the developer role or group ops").
    pub who: String,
    pub required: u32,
    pub approvals: usize,
    pub role: Option<String>,
    pub group: Option<String>,
    /// Who may not approve it: authors and committers of the commits it
    /// brings (four-eyes), who caused the run that made the release (its
    /// trigger, re-run or pusher), and the person who asked for it.
    pub excluded: Vec<String>,
    pub expires_at: Option<i64>,
}

fn rank(role: &str) -> u8 {
    match role {
        "admin" => 3,
        "developer" => 2,
        "viewer" => 1,
        _ => 0,
    }
}

impl Deployer {
    /// How an environment treats a release: as the release's own pipeline
    /// (or, for a release older than the environment, the newest one's)
    /// defines it, tightened by what the environment runs now. A release can
    /// make the rules stricter, never looser: otherwise a push on any branch
    /// could declare `prod` its own and skip its approvals.
    pub(crate) async fn environment_spec(
        &self,
        release: &Release,
        environment: &str,
    ) -> Result<(Arc<Pipeline>, Environment)> {
        let (pipeline, mut env) = self.declared_spec(release, environment).await?;
        if let Some(live) = self.live_spec(release, environment).await? {
            tighten(&mut env, &live);
        }
        Ok((pipeline, env))
    }

    /// The environment as declared by the release's pipeline file (or the
    /// newest release's). Only releases of protected branches count: their
    /// files are reviewed code, and a file says what a deployment runs
    /// (target, health and smoke commands) and which environments exist.
    async fn declared_spec(
        &self,
        release: &Release,
        environment: &str,
    ) -> Result<(Arc<Pipeline>, Environment)> {
        let project = self.store().project_by_id(release.project_id).await?;
        let engine = &self.inner.engine;
        if !engine.protects_branch(&project, &release.branch).await {
            let protected = engine.protected_branches(&project).await;
            return Err(DeployError::Invalid(format!(
                "release {} was built on branch `{}`, which is not one of project `{}`'s protected branches \
                 ({protected}): only releases of protected branches are deployed, since a release's pipeline file \
                 says what its deployment runs; merge the change into a protected branch and deploy that release",
                release.version, release.branch, project.name
            )));
        }
        let mut candidates = vec![release.run_id];
        if let Ok(latest) = self.store().releases(release.project_id, 1).await
            && let Some(newest) = latest.first()
            && engine.protects_branch(&project, &newest.branch).await
        {
            candidates.push(newest.run_id);
        }
        for run in candidates {
            if let Some(p) = engine.pipeline(run).await?
                && let Some(env) = p.environment(environment).cloned()
            {
                return Ok((p, env));
            }
        }
        Err(DeployError::Invalid(format!(
            "release {} does not know environment `{environment}`: add it under `environments:` in the pipeline file",
            release.version
        )))
    }

    /// The environment as the release it runs now defined it.
    async fn live_spec(&self, release: &Release, environment: &str) -> Result<Option<Environment>> {
        let Some(live) = self.live_release(release.project_id, environment).await? else {
            return Ok(None);
        };
        if live.id == release.id {
            return Ok(None);
        }
        Ok(self
            .inner
            .engine
            .pipeline(live.run_id)
            .await?
            .and_then(|p| p.environment(environment).cloned()))
    }

    /// The release an environment runs now, if any.
    pub(crate) async fn live_release(
        &self,
        project: slipway_store::ProjectId,
        environment: &str,
    ) -> Result<Option<Release>> {
        let Ok(record) = self.store().environment(project, environment).await else {
            return Ok(None);
        };
        let Some(current) = record.current else {
            return Ok(None);
        };
        let deployment = self.store().deployment(current).await?;
        Ok(Some(self.store().release(deployment.release_id).await?))
    }

    /// Records a deployment: queued at once, or waiting at the environment's decision point.
    pub(crate) async fn request_deployment(
        &self,
        release: &Release,
        env: &Environment,
        action: &str,
        by: &str,
    ) -> Result<Deployment> {
        // A rollback restores service: it does not wait for approvals.
        let awaiting_until = env
            .approval
            .as_ref()
            .filter(|_| action != "rollback")
            .map(|a| now_ms() + i64::try_from(a.expires.as_millis()).unwrap_or(i64::MAX / 2));
        let deployment = self
            .store()
            .create_deployment(&NewDeployment {
                project: release.project_id,
                environment: &env.name,
                release: release.id,
                action,
                requested_by: by,
                awaiting_until,
            })
            .await?;
        let what = if awaiting_until.is_some() {
            "awaits approval"
        } else {
            "queued"
        };
        self.store()
            .audit(
                release.project_id,
                by,
                action,
                &format!("deployment {} to {}", deployment.id, env.name),
                &format!("release {} {what}", release.version),
            )
            .await?;
        self.wake();
        Ok(deployment)
    }

    /// Handles a person's request for an environment; returns the deployment made.
    pub async fn request(
        &self,
        project: &Project,
        environment: &str,
        request: Request,
        by: &Approver,
    ) -> Result<Deployment> {
        if rank(&by.role) < rank("developer") {
            return Err(DeployError::Forbidden(format!(
                "deploying needs the developer role; `{}` has {}",
                by.name, by.role
            )));
        }
        let (release, action) = match request {
            Request::Deploy { version } => (
                self.store()
                    .release_by_version(project.id, &version)
                    .await?,
                "deploy",
            ),
            Request::Promote { from } => (
                self.promotable(project, &from, environment).await?,
                "promote",
            ),
            Request::Rollback { to } => (
                self.rollback_target(project, environment, to.as_deref())
                    .await?,
                "rollback",
            ),
        };
        let (_, env) = self.environment_spec(&release, environment).await?;
        self.store()
            .ensure_environment(
                project.id,
                environment,
                self.position(&release, environment).await,
            )
            .await?;
        self.request_deployment(&release, &env, action, &by.name)
            .await
    }

    async fn position(&self, release: &Release, environment: &str) -> i64 {
        match self.inner.engine.pipeline(release.run_id).await {
            Ok(Some(p)) => p
                .environments
                .iter()
                .position(|e| e.name == environment)
                .and_then(|i| i64::try_from(i).ok())
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// The release `from` runs, if it may go on to `to`.
    async fn promotable(&self, project: &Project, from: &str, to: &str) -> Result<Release> {
        let record = self.store().environment(project.id, from).await?;
        let current = record.current.ok_or_else(|| {
            DeployError::Invalid(format!(
                "{from} runs nothing yet, so there is nothing to promote"
            ))
        })?;
        if record.health != "healthy" {
            return Err(DeployError::Invalid(format!(
                "{from} is {} ({}); promote only a release that is live and healthy",
                record.health,
                record.health_note.as_deref().unwrap_or("no detail")
            )));
        }
        let release = self
            .store()
            .release(self.store().deployment(current).await?.release_id)
            .await?;
        let (_, target) = self.environment_spec(&release, to).await?;
        if target.source != Source::Environment(from.to_string()) {
            let takes = match &target.source {
                Source::Environment(e) => format!("promotions out of {e}"),
                Source::Branch(b) => format!("new releases of branch {b}"),
            };
            return Err(DeployError::Invalid(format!(
                "{to} takes {takes}, not promotions out of {from}"
            )));
        }
        Ok(release)
    }

    /// The release a rollback goes to: `to`, or the newest one that
    /// succeeded in the environment before the current one.
    async fn rollback_target(
        &self,
        project: &Project,
        environment: &str,
        to: Option<&str>,
    ) -> Result<Release> {
        if let Some(version) = to {
            // Only back to what ran there: a new release goes through `deploy`
            // and the environment's decision point.
            let release = self.store().release_by_version(project.id, version).await?;
            let ran = self
                .store()
                .deployments_of_release(release.id)
                .await?
                .iter()
                .any(|d| d.environment == environment && d.state == DeployState::Succeeded);
            if !ran {
                return Err(DeployError::Invalid(format!(
                    "release {version} never ran in {environment}, so it is no rollback; `slipway deploy {environment} {version}` asks for it through the environment's decision point"
                )));
            }
            return Ok(release);
        }
        let record = self.store().environment(project.id, environment).await?;
        let current = match record.current {
            Some(id) => Some(self.store().deployment(id).await?.release_id),
            None => None,
        };
        let history = self
            .store()
            .deployments(project.id, environment, 200)
            .await?;
        let before = history
            .iter()
            .filter(|d| d.state == DeployState::Succeeded)
            .map(|d| d.release_id)
            .find(|r| Some(*r) != current)
            .ok_or_else(|| {
                DeployError::Invalid(format!(
                    "{environment} has run no other release to go back to; name one with --to VERSION"
                ))
            })?;
        Ok(self.store().release(before).await?)
    }

    /// The commits a release would bring to an environment: everything since
    /// what runs there now (not only since the branch's previous release,
    /// which may never have reached it). Falls back to the release's own list.
    async fn new_commits(&self, release: &Release, environment: &str) -> Vec<ReleaseCommit> {
        let live = self
            .live_release(release.project_id, environment)
            .await
            .ok()
            .flatten();
        let mirror = Mirror::at(&self.inner.engine.paths.mirror(release.project_id));
        let since = live.as_ref().map(|r| r.commit.as_str());
        match mirror.log(since, &release.commit, 100_000).await {
            Ok(found) if !found.is_empty() => found
                .into_iter()
                .map(|c| ReleaseCommit {
                    sha: c.sha,
                    author: c.author,
                    email: c.email,
                    message: c.subject,
                    at: c.at.map(|secs| secs * 1000),
                    committer: c.committer,
                    committer_email: c.committer_email,
                })
                .collect(),
            _ => release.commits.clone(),
        }
    }

    /// Who may still approve a deployment waiting at its decision point.
    pub async fn pending(&self, deployment: &Deployment) -> Result<Option<Pending>> {
        if deployment.state != DeployState::AwaitingApproval {
            return Ok(None);
        }
        let release = self.store().release(deployment.release_id).await?;
        let (_, env) = self
            .environment_spec(&release, &deployment.environment)
            .await?;
        let Some(rule) = env.approval else {
            return Ok(None);
        };
        let approvals = self
            .store()
            .decisions(deployment.id)
            .await?
            .iter()
            .filter(|d| d.decision == "approve")
            .count();
        Ok(Some(Pending {
            who: approvers(&rule),
            required: rule.required,
            approvals,
            role: rule.role,
            group: rule.group,
            excluded: self.excluded(deployment, &release, rule.four_eyes).await?,
            expires_at: deployment.expires_at,
        }))
    }

    /// Who may not approve a deployment, in words: the commits' authors and
    /// committers (with four-eyes), who caused the release's run, and the
    /// person who asked for the deployment (an automatic one is asked for by
    /// whoever caused the run; a poll is nobody).
    async fn excluded(
        &self,
        deployment: &Deployment,
        release: &Release,
        four_eyes: bool,
    ) -> Result<Vec<String>> {
        let mut excluded = if four_eyes {
            authors(&self.new_commits(release, &deployment.environment).await)
        } else {
            Vec::new()
        };
        let runs = self.causing_runs(release, &deployment.environment).await?;
        for run in &runs {
            let n = run.number;
            match (&run.cause.person, &run.cause.pusher) {
                (Some(person), Some(p)) => excluded.push(format!(
                    "{person} (pushed run {n}: {}, as {} reports)",
                    p.describe(),
                    p.forge
                )),
                (None, Some(p)) => excluded.push(format!(
                    "{} (pushed run {n}, as {} reports)",
                    p.describe(),
                    p.forge
                )),
                (Some(person), None) if run.id == release.run_id => {
                    excluded.push(format!("{person} (started run {n})"));
                }
                _ => {}
            }
        }
        let asked = &deployment.requested_by;
        let caused = runs.iter().any(|r| r.cause.person.as_ref() == Some(asked));
        if !caused && self.store().user(asked).await?.is_some() {
            excluded.push(format!("{asked} (asked for it)"));
        }
        Ok(excluded)
    }

    /// The release's run and every other run of the project that built a
    /// commit the deployment brings: whoever pushed any of them brought what
    /// it ships, however the run that made the release came about (a rerun, a
    /// trigger by someone else, another branch's push). Starting a run brings
    /// no code, so only the release's own starter counts: they chose what
    /// became the release.
    async fn causing_runs(&self, release: &Release, environment: &str) -> Result<Vec<Run>> {
        let mut commits: std::collections::HashSet<String> = self
            .new_commits(release, environment)
            .await
            .into_iter()
            .map(|c| c.sha)
            .collect();
        commits.insert(release.commit.clone());
        let runs = self
            .store()
            .runs(release.project_id, RUNS_LOOKED_AT)
            .await?;
        Ok(runs
            .into_iter()
            .filter(|r| r.id == release.run_id || commits.contains(&r.commit))
            .collect())
    }

    /// Approves (`approve`) or rejects a waiting deployment.
    pub async fn decide(
        &self,
        deployment: i64,
        by: &Approver,
        approve: bool,
        comment: &str,
    ) -> Result<Deployment> {
        let dep = self.store().deployment(deployment).await?;
        if dep.state != DeployState::AwaitingApproval {
            return Err(DeployError::Invalid(format!(
                "deployment {deployment} is {}, not waiting for approval",
                dep.state
            )));
        }
        if dep.expires_at.is_some_and(|at| at < now_ms()) {
            self.expire(&dep).await?;
            return Err(DeployError::Invalid(format!(
                "deployment {deployment} expired before this decision; ask for a new one"
            )));
        }
        let (release, rule) = self.may_decide(&dep, by).await?;
        if !approve && comment.trim().is_empty() {
            return Err(DeployError::Invalid(
                "a rejection needs a comment saying why (-m TEXT)".into(),
            ));
        }
        let decision = if approve { "approve" } else { "reject" };
        self.store()
            .record_decision(deployment, &by.name, decision, comment)
            .await?;
        self.store()
            .audit(
                dep.project_id,
                &by.name,
                decision,
                &format!("deployment {deployment} to {}", dep.environment),
                &format!("release {}: {comment}", release.version),
            )
            .await?;
        let approvals = self
            .store()
            .decisions(deployment)
            .await?
            .iter()
            .filter(|d| d.decision == "approve")
            .count();
        let next = if !approve {
            Some((
                DeployState::Rejected,
                format!("rejected by {}: {comment}", by.name),
            ))
        } else if approvals >= rule.required as usize {
            Some((
                DeployState::Queued,
                format!("approved by {approvals} of {} needed", rule.required),
            ))
        } else {
            None
        };
        if let Some((to, reason)) = next {
            self.store()
                .set_deploy_state(deployment, DeployState::AwaitingApproval, to, Some(&reason))
                .await?;
            self.wake();
        }
        Ok(self.store().deployment(deployment).await?)
    }

    /// Whether `by` may decide on a waiting deployment: the release and the
    /// rule when so, else why not (for the refusal, and for the UI to show
    /// instead of buttons).
    pub async fn may_decide(
        &self,
        dep: &Deployment,
        by: &Approver,
    ) -> Result<(Release, slipway_spec::Approval)> {
        let release = self.store().release(dep.release_id).await?;
        let (_, env) = self.environment_spec(&release, &dep.environment).await?;
        let rule = env.approval.clone().ok_or_else(|| {
            DeployError::Invalid(format!("{} needs no approval", dep.environment))
        })?;
        let may = rule
            .role
            .as_deref()
            .is_some_and(|r| rank(&by.role) >= rank(r))
            || rule.group.as_ref().is_some_and(|g| by.groups.contains(g));
        if !may {
            let who = approvers(&rule);
            return Err(DeployError::Forbidden(format!(
                "deciding on {} needs {who}; `{}` has the {} role and groups [{}]",
                dep.environment,
                by.name,
                by.role,
                by.groups.join(", ")
            )));
        }
        if !by.person {
            return Err(DeployError::Forbidden(format!(
                "an approval counts a person, and token `{}` belongs to nobody: an admin makes a person's \
                 token with `slipway token create NAME --user USER` (or `--email ADDRESS`)",
                by.name
            )));
        }
        if let Some((earlier, email)) = self.decided_as(dep, by).await? {
            return Err(DeployError::Forbidden(format!(
                "`{earlier}` ({email}) decided on deployment {} already, and `{}` has that email too: one email is one \
                 person, who decides once; an admin gives each person their own email (`slipway user add NAME --replace --email ADDRESS`)",
                dep.id, by.name
            )));
        }
        for run in self.causing_runs(&release, &dep.environment).await? {
            if let Some(how) = caused(&run, by, run.id == release.run_id) {
                return Err(DeployError::Forbidden(format!(
                    "`{}` {how}, which brings code release {} ships: someone else must decide on deploying it",
                    by.name, release.version
                )));
            }
        }
        if dep.requested_by == by.name {
            return Err(DeployError::Forbidden(format!(
                "`{}` asked for deployment {} to {}: someone else must decide on it",
                by.name, dep.id, dep.environment
            )));
        }
        if rule.four_eyes {
            if by.email.is_none() {
                return Err(DeployError::Forbidden(format!(
                    "four-eyes needs to know who `{}` is: an admin gives the token an email (`slipway token create NAME --email ADDRESS`)",
                    by.name
                )));
            }
            let commits = self.new_commits(&release, &dep.environment).await;
            if let Some((commit, how)) = authored(&commits, by) {
                return Err(DeployError::Forbidden(format!(
                    "`{}` {how} commit {} ({}) that release {} brings to {}: four-eyes needs someone else to decide",
                    by.name,
                    crate::release::short(&commit.sha),
                    commit.message,
                    release.version,
                    dep.environment
                )));
            }
        }
        Ok((release, rule))
    }

    /// An earlier decider on `dep` who is another user with `by`'s email
    /// (any letter case), and that email: a database from before emails
    /// were unique may hold one person as two users.
    async fn decided_as(
        &self,
        dep: &Deployment,
        by: &Approver,
    ) -> Result<Option<(String, String)>> {
        let Some(mine) = by.email.as_deref().filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        for decision in self.store().decisions(dep.id).await? {
            if decision.who == by.name {
                continue;
            }
            if let Some(email) = self
                .store()
                .user(&decision.who)
                .await?
                .and_then(|u| u.email)
                && email.trim().eq_ignore_ascii_case(mine.trim())
            {
                return Ok(Some((decision.who, email)));
            }
        }
        Ok(None)
    }

    /// Deployments whose decision point passed its expiry end as expired.
    pub(crate) async fn expire_decisions(&self) -> Result<()> {
        let now = now_ms();
        for dep in self
            .store()
            .deployments_in(DeployState::AwaitingApproval)
            .await?
        {
            if dep.expires_at.is_some_and(|at| at < now) {
                self.expire(&dep).await?;
            }
        }
        Ok(())
    }

    async fn expire(&self, dep: &Deployment) -> Result<()> {
        if self
            .store()
            .set_deploy_state(
                dep.id,
                DeployState::AwaitingApproval,
                DeployState::Expired,
                Some("no decision before the expiry"),
            )
            .await?
        {
            self.store()
                .audit(
                    dep.project_id,
                    "slipway",
                    "expire",
                    &format!("deployment {} to {}", dep.id, dep.environment),
                    "no decision before the expiry",
                )
                .await?;
        }
        Ok(())
    }
}

/// Who an approval rule lets decide, in words.
fn approvers(rule: &slipway_spec::Approval) -> String {
    [
        rule.role.as_ref().map(|r| format!("the {r} role")),
        rule.group.as_ref().map(|g| format!("group {g}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" or ")
}

/// Where an environment takes releases from and its decision point belong to
/// the environment: the incoming definition keeps only what is stricter.
fn tighten(env: &mut Environment, live: &Environment) {
    env.source = live.source.clone();
    env.auto &= live.auto;
    env.production |= live.production;
    env.approval = match (env.approval.take(), live.approval.clone()) {
        (None, rule) | (rule, None) => rule,
        (Some(new), Some(old)) => Some(slipway_spec::Approval {
            required: new.required.max(old.required),
            four_eyes: new.four_eyes || old.four_eyes,
            expires: new.expires.min(old.expires),
            ..old
        }),
    };
}

/// How many of a project's newest runs are searched for the people who
/// caused a release's commits: years of runs of a busy project.
const RUNS_LOOKED_AT: i64 = 100_000;

/// Who asks for an automatic deployment of a run's release: whoever caused
/// the run, or the run itself when nobody known did (a poll, a promotion's merge).
pub(crate) fn requester_of(run: &Run) -> String {
    run.cause
        .describe()
        .unwrap_or_else(|| format!("run {} ({})", run.number, run.trigger))
}

/// How the approver caused `run`, if they did: they pushed its commit as the
/// forge reports (the email, login or name the webhook gave is theirs) or,
/// for the release's own run (`own`), started it (trigger, re-run).
fn caused(run: &Run, by: &Approver, own: bool) -> Option<String> {
    let same = |a: &str, b: &str| !b.trim().is_empty() && a.trim().eq_ignore_ascii_case(b.trim());
    let cause = &run.cause;
    if let Some(pusher) = &cause.pusher {
        let email = by
            .email
            .as_deref()
            .zip(pusher.email.as_deref())
            .is_some_and(|(mine, theirs)| same(mine, theirs));
        let named = [&pusher.login, &pusher.name]
            .into_iter()
            .flatten()
            .any(|n| same(&by.name, n));
        if email || named || cause.person.as_deref() == Some(by.name.as_str()) {
            return Some(format!(
                "pushed the commit run {} built ({}, as {} reports)",
                run.number,
                pusher.describe(),
                pusher.forge
            ));
        }
    }
    (own && cause.person.as_deref() == Some(by.name.as_str()))
        .then(|| format!("started run {} ({})", run.number, run.trigger))
}

/// Everyone who wrote or committed one of the commits (name and email).
fn authors(commits: &[ReleaseCommit]) -> Vec<String> {
    let mut out: Vec<String> = commits
        .iter()
        .flat_map(|c| {
            let committer = (!c.committer_email.is_empty())
                .then(|| format!("{} <{}>", c.committer, c.committer_email));
            std::iter::once(format!("{} <{}>", c.author, c.email)).chain(committer)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A commit the approver wrote or committed, matched on email or name, and
/// which of the two. The author is whatever `git commit --author` said; the
/// committer is who made the commit, so both count.
fn authored<'c>(
    commits: &'c [ReleaseCommit],
    by: &Approver,
) -> Option<(&'c ReleaseCommit, &'static str)> {
    let is = |name: &str, email: &str| {
        by.email
            .as_deref()
            .is_some_and(|e| !email.is_empty() && e.eq_ignore_ascii_case(email))
            || (!name.is_empty() && name == by.name)
    };
    commits.iter().find_map(|c| {
        if is(&c.author, &c.email) {
            Some((c, "wrote"))
        } else if is(&c.committer, &c.committer_email) {
            Some((c, "committed"))
        } else {
            None
        }
    })
}
