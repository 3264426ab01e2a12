//! Who may pull, push and delete. Clients authenticate with a Slipway API
//! token: as the password of HTTP Basic (`docker login -u anything`), as a
//! plain `Bearer slw_…`, or through the token flow docker prefers (the 401
//! points at `/v2/token`, which trades the Basic credentials for a short-lived
//! bearer token limited to the scopes asked for). Without credentials, pulls
//! work only from repositories that allow anonymous pull.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use slipway_secrets::Role;
use slipway_store::{Repository, TagPolicy, now_ms};

use super::error::OciError;
use crate::AppState;

/// What a request wants to do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    /// The actions a challenge for this one names. Pushing needs pull too
    /// (clients check what exists before they upload), as the CNCF
    /// distribution registry asks: a client that fetches one token per
    /// repository must get one that covers the whole push.
    fn challenged(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "pull,push",
            Action::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Action> {
        match text {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// How long a bearer token from `/v2/token` lasts.
const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
const TOKEN_PREFIX: &str = "slr_";
const TOKEN_AAD: &[u8] = b"registry-bearer-token";

/// The caller of a registry request.
#[derive(Debug, Clone)]
pub enum RegistryCaller {
    Anonymous,
    /// An API token (Basic password or plain bearer).
    Token {
        name: String,
        role: Role,
    },
    /// A bearer token from `/v2/token`: a role, limited to the granted scopes.
    Scoped {
        name: String,
        role: Role,
        grants: Vec<Grant>,
        /// When it expires: a token traded for a new one passes on its end, never extends it.
        exp: i64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// `REPOSITORY/IMAGE`.
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    exp: i64,
    grants: Vec<Grant>,
}

/// The role an action on `repo` needs: pushing to and deleting from a
/// release repository is for admins (promotion is the developers' way in).
fn needed(repo: &Repository, action: Action) -> Option<Role> {
    match (action, repo.policy) {
        (Action::Pull, _) if repo.anonymous_pull => None,
        (Action::Pull, _) => Some(Role::Viewer),
        (_, TagPolicy::Release) => Some(Role::Admin),
        _ => Some(Role::Developer),
    }
}

impl RegistryCaller {
    /// Reads the caller from the request; bad credentials are refused, none is anonymous.
    pub async fn from_headers(
        headers: &HeaderMap,
        state: &AppState,
    ) -> Result<RegistryCaller, OciError> {
        let Some(header) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(RegistryCaller::Anonymous);
        };
        if let Some(basic) = header.strip_prefix("Basic ") {
            let decoded = STANDARD
                .decode(basic.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    OciError::unauthorized("the Basic credentials are not valid base64")
                })?;
            let (_, password) = decoded.split_once(':').unwrap_or(("", &decoded));
            // A job's engine logs in with the bearer token it was issued.
            if password.starts_with(TOKEN_PREFIX) {
                return scoped_token(password, state).await;
            }
            return api_token(password, state).await;
        }
        let bearer = header.strip_prefix("Bearer ").unwrap_or_default().trim();
        if bearer.starts_with(TOKEN_PREFIX) {
            return scoped_token(bearer, state).await;
        }
        api_token(bearer, state).await
    }

    /// Refuses the action unless this caller may do it on `name` (`REPO/IMAGE`) of `repo`.
    pub fn require(&self, repo: &Repository, name: &str, action: Action) -> Result<(), OciError> {
        let Some(role) = needed(repo, action) else {
            return Ok(());
        };
        let (who, has, grants) = match self {
            RegistryCaller::Anonymous => {
                return Err(OciError::challenge(
                    name,
                    action.as_str(),
                    scope(name, action.challenged()),
                ));
            }
            RegistryCaller::Token { name, role } => (name, *role, None),
            RegistryCaller::Scoped {
                name, role, grants, ..
            } => (name, *role, Some(grants)),
        };
        // The role decides first: a token whose role can never do this is told
        // why, rather than sent back for a token it would not get.
        if !has.allows(role) {
            return Err(OciError::denied(format!(
                "{} on {name} needs the {} role; token `{who}` has {}{}",
                action.as_str(),
                role.as_str(),
                has.as_str(),
                if repo.policy == TagPolicy::Release && action == Action::Push {
                    " (release repositories take images through `slipway promote`)"
                } else {
                    ""
                }
            )));
        }
        let granted = grants.is_none_or(|grants| {
            grants
                .iter()
                .any(|g| g.name == name && g.actions.iter().any(|a| a == action.as_str()))
        });
        if granted {
            Ok(())
        } else {
            Err(OciError::insufficient_scope(
                name,
                action.as_str(),
                scope(name, action.challenged()),
            ))
        }
    }

    /// Whether any credentials were given (the `/v2/` check needs some).
    pub fn is_anonymous(&self) -> bool {
        matches!(self, RegistryCaller::Anonymous)
    }
}

/// A token scope as challenges name it and `/v2/token` reads it.
pub fn scope(name: &str, actions: &str) -> String {
    format!("repository:{name}:{actions}")
}

async fn api_token(token: &str, state: &AppState) -> Result<RegistryCaller, OciError> {
    let caller = crate::auth::Caller::from_token(token, state)
        .await
        .map_err(|e| OciError::unauthorized(e.message))?;
    Ok(RegistryCaller::Token {
        name: caller.name,
        role: caller.role,
    })
}

async fn scoped_token(token: &str, state: &AppState) -> Result<RegistryCaller, OciError> {
    let sealed = URL_SAFE_NO_PAD
        .decode(&token[TOKEN_PREFIX.len()..])
        .map_err(|_| OciError::unauthorized("malformed bearer token"))?;
    let plain = state
        .key
        .open(&sealed, TOKEN_AAD)
        .map_err(|_| OciError::unauthorized("bearer token not issued by this server"))?;
    let claims: Claims = serde_json::from_slice(&plain)
        .map_err(|_| OciError::unauthorized("malformed bearer token"))?;
    if claims.exp < now_ms() {
        return Err(OciError::unauthorized("bearer token expired; log in again"));
    }
    if claims.sub.starts_with(JOB_SUBJECT) {
        require_running_job(&claims.sub, state).await?;
    }
    let role = Role::parse(&claims.role).map_err(|e| OciError::internal(e.to_string()))?;
    Ok(RegistryCaller::Scoped {
        name: claims.sub,
        role,
        grants: claims.grants,
        exp: claims.exp,
    })
}

/// `GET /v2/token?scope=repository:NAME:ACTIONS…`: a bearer token granting
/// the asked actions the caller's role allows (docker asks, then uses it).
pub async fn issue(
    state: &AppState,
    caller: &RegistryCaller,
    scopes: &[String],
) -> Result<serde_json::Value, OciError> {
    let (sub, role) = match caller {
        RegistryCaller::Anonymous => ("anonymous".to_string(), None),
        RegistryCaller::Token { name, role } | RegistryCaller::Scoped { name, role, .. } => {
            (name.clone(), Some(*role))
        }
    };
    let mut grants = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split(' ')) {
        let mut parts = scope.splitn(3, ':');
        let (Some("repository"), Some(name), Some(actions)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some((repo_name, _)) = name.split_once('/') else {
            continue;
        };
        let Some(repo) = state
            .registry
            .store
            .repository(repo_name)
            .await
            .map_err(|e| OciError::internal(e.to_string()))?
        else {
            continue;
        };
        // `*` (skopeo asks for it to delete) means every action.
        // A scoped token never grants more than it holds.
        let held = |action: &Action| match caller {
            RegistryCaller::Scoped { grants, .. } => grants
                .iter()
                .any(|g| g.name == name && g.actions.iter().any(|a| a == action.as_str())),
            _ => true,
        };
        let allowed: Vec<String> = actions
            .split(',')
            .flat_map(|a| match a {
                "*" => vec![Action::Pull, Action::Push, Action::Delete],
                a => Action::parse(a).into_iter().collect(),
            })
            .filter(held)
            .filter(|a| match (needed(&repo, *a), role) {
                (None, _) => true,
                (Some(need), Some(has)) => has.allows(need),
                (Some(_), None) => false,
            })
            .map(|a| a.as_str().to_string())
            .collect();
        grants.push(Grant {
            name: name.to_string(),
            actions: allowed,
        });
    }
    let claims = Claims {
        sub,
        role: role.unwrap_or(Role::Viewer).as_str().to_string(),
        exp: match caller {
            RegistryCaller::Scoped { exp, .. } => {
                (*exp).min(now_ms() + TOKEN_LIFETIME.as_millis() as i64)
            }
            _ => now_ms() + TOKEN_LIFETIME.as_millis() as i64,
        },
        grants,
    };
    Ok(token_body(&claims, state))
}

/// A project's pipelines push only to images named after it: `REPO/PROJECT`
/// or `REPO/PROJECT/…`. Otherwise any project could overwrite another's images.
pub fn push_allowed(project: &str, target: &str) -> Result<(), String> {
    let image = target.split_once('/').map_or("", |(_, image)| image);
    if image == project || image.starts_with(&format!("{project}/")) {
        Ok(())
    } else {
        Err(format!(
            "project `{project}` pushes only to images named after it: REPOSITORY/{project} or REPOSITORY/{project}/NAME, not {target}"
        ))
    }
}

/// A job's token (and every token exchanged for it) is good only while its
/// job runs the attempt it was issued for: `job:PROJECT/RUN/JOB@ID.ATTEMPT`
/// names both. A job given back and claimed again gets a new token; the old
/// one (which a lost worker may still hold) opens nothing.
async fn require_running_job(subject: &str, state: &AppState) -> Result<(), OciError> {
    let ended = || {
        OciError::unauthorized(format!(
            "the job attempt of token `{subject}` has ended; a running job gets a token of its own"
        ))
    };
    let (id, attempt) = subject
        .rsplit_once('@')
        .and_then(|(_, held)| held.split_once('.'))
        .and_then(|(id, attempt)| Some((id.parse::<i64>().ok()?, attempt.parse::<i64>().ok()?)))
        .ok_or_else(ended)?;
    match state.engine.store.job(slipway_store::JobId(id)).await {
        Ok(job) if job.state == slipway_store::State::Running && job.attempt == attempt => Ok(()),
        Ok(_) | Err(slipway_store::StoreError::NotFound(_)) => Err(ended()),
        Err(e) => Err(OciError::internal(e.to_string())),
    }
}

const JOB_SUBJECT: &str = "job:";

/// How long a job's push credentials last at most: the push comes at the end
/// of the job, and the token stops working when the job ends anyway.
const JOB_TOKEN_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// A bearer token for a job: pull and push on `target` (`REPOSITORY/IMAGE`)
/// only, with the developer role (so never into a release repository).
pub fn job_token(key: &slipway_secrets::SecretKey, subject: &str, target: &str) -> String {
    let claims = Claims {
        sub: format!("{JOB_SUBJECT}{subject}"),
        role: Role::Developer.as_str().to_string(),
        exp: now_ms() + JOB_TOKEN_LIFETIME.as_millis() as i64,
        grants: vec![Grant {
            name: target.to_string(),
            actions: vec!["pull".into(), "push".into()],
        }],
    };
    seal_token(&claims, key)
}

/// How long a deployment's pull credentials last: one pull.
const PULL_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// A bearer token for pulling `target` (`REPOSITORY/IMAGE`) only.
pub fn pull_token(key: &slipway_secrets::SecretKey, subject: &str, target: &str) -> String {
    let claims = Claims {
        sub: format!("deploy:{subject}"),
        role: Role::Developer.as_str().to_string(),
        exp: now_ms() + PULL_TOKEN_LIFETIME.as_millis() as i64,
        grants: vec![Grant {
            name: target.to_string(),
            actions: vec!["pull".into()],
        }],
    };
    seal_token(&claims, key)
}

fn seal_token(claims: &Claims, key: &slipway_secrets::SecretKey) -> String {
    let plain = serde_json::to_vec(claims).unwrap_or_default();
    format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(key.seal(&plain, TOKEN_AAD))
    )
}

fn token_body(claims: &Claims, state: &AppState) -> serde_json::Value {
    let token = seal_token(claims, &state.key);
    serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_LIFETIME.as_secs(),
    })
}
