//! The delivery half of `.slipway.yml`: how green runs become releases
//! (`release:`) and where releases go (`environments:`), read with the same
//! reader as jobs so every mistake is reported with its place.

use std::time::Duration;

use crate::model::Env;
use crate::reader::{Fields, Reader, is_identifier};
use crate::template::Template;
use crate::yaml::Node;

const RELEASE_KEYS: &[&str] = &["version", "branches", "config"];
const ENVIRONMENT_KEYS: &[&str] = &[
    "branch",
    "from",
    "deploy",
    "target",
    "config",
    "secrets",
    "health",
    "smoke",
    "approval",
    "promote",
    "production",
    "port",
];
const TARGET_KINDS: &[&str] = &["local", "docker", "swarm"];
const LOCAL_KEYS: &[&str] = &["command"];
const CONTAINER_KEYS: &[&str] = &["image", "port", "replicas"];
const HEALTH_KEYS: &[&str] = &["http", "command", "timeout"];
const APPROVAL_KEYS: &[&str] = &["required", "role", "group", "four_eyes", "expires"];
const PROMOTE_KEYS: &[&str] = &["merge", "to"];
const MERGE_KEYS: &[&str] = &["into", "mode"];
const ROLES: &[&str] = &["viewer", "developer", "admin"];
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_APPROVAL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How a green run becomes a release.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    /// The version template, e.g. `1.{{ run.number }}`.
    pub version: Template,
    /// Branches whose green runs make releases; empty means the branches
    /// environments take (`branch:`).
    pub branches: Vec<String>,
    /// Configuration every environment starts from (the defaults layer).
    pub config: Env,
}

/// One environment a release can be deployed to.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    /// Where it takes releases from: new releases of a branch, or promotions
    /// out of another environment.
    pub source: Source,
    /// Whether a release that reaches it is deployed at once or waits to be asked.
    pub auto: bool,
    pub target: TargetSpec,
    /// The environment's layer of configuration, over the release's defaults.
    pub config: Env,
    /// Project secrets given to the application as variables of the same name (the top layer).
    pub secrets: Vec<String>,
    pub health: Health,
    /// Commands run after the switch with `SLIPWAY_ENV_URL` set; any failure rolls back.
    pub smoke: Vec<String>,
    pub approval: Option<Approval>,
    pub promote: Promote,
    /// Production: images are promoted to the `release` repository before it deploys.
    pub production: bool,
    /// The port of the environment's stable URL (one is chosen and kept when absent).
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Branch(String),
    Environment(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A supervised process on the server's machine, run in the release's artifacts.
    Local { command: String },
    /// A container of one of the release's images.
    Docker { image: Option<String>, port: u16 },
    /// A Docker Swarm service of one of the release's images.
    Swarm {
        image: Option<String>,
        port: u16,
        replicas: u32,
    },
}

impl TargetSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Local { .. } => "local",
            TargetSpec::Docker { .. } => "docker",
            TargetSpec::Swarm { .. } => "swarm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub check: HealthCheck,
    /// How long a new version has to become healthy.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `GET PATH` must answer 2xx.
    Http(String),
    /// A shell command (with `SLIPWAY_INSTANCE_URL` set) must exit 0.
    Command(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub required: u32,
    /// Who may approve: holders of this role or more…
    pub role: Option<String>,
    /// …or members of this group.
    pub group: Option<String>,
    /// The author of any commit in the release may not approve it.
    pub four_eyes: bool,
    pub expires: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promote {
    /// After a healthy deployment, merge the release's branch into this one on the remote.
    pub merge: Option<Merge>,
    /// After a healthy deployment, promote the release to this environment.
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub into: String,
    /// Fast-forward only, or a merge commit when the branches diverged.
    pub fast_forward_only: bool,
}

pub fn release(r: &mut Reader, node: Option<&Node>) -> ReleaseSpec {
    let default_version = || Template::parse("{{ run.number }}").ok();
    let Some(node) = node else {
        return ReleaseSpec {
            version: default_version().unwrap_or_else(empty_template),
            branches: Vec::new(),
            config: Env::new(),
        };
    };
    let f = r.fields(node, "release", RELEASE_KEYS);
    let get = |key| f.as_ref().and_then(|f: &Fields| f.get(key));
    let version = get("version")
        .and_then(|n| {
            let t = crate::schema::template(r, n, "release.version")?;
            if t.hashes().next().is_some() {
                r.error(n.pos, "`release.version` cannot use `hash`: a version comes from the run, not the files");
                return None;
            }
            Some(t)
        })
        .or_else(default_version)
        .unwrap_or_else(empty_template);
    let branches = get("branches")
        .map(|n| r.strings(n, "release.branches"))
        .unwrap_or_default();
    ReleaseSpec {
        version,
        branches: branches.into_iter().map(|(b, _)| b).collect(),
        config: get("config")
            .map(|n| r.env(n, "release.config"))
            .unwrap_or_default(),
    }
}

fn empty_template() -> Template {
    Template {
        source: String::new(),
        parts: Vec::new(),
    }
}

pub fn environments(r: &mut Reader, node: Option<&Node>) -> Vec<Environment> {
    let Some(node) = node else {
        return Vec::new();
    };
    let mut out: Vec<Environment> = Vec::new();
    let mut refs = Vec::new();
    for (name, key, value) in r.entries(node, "environments") {
        if !valid_name(name) {
            r.error_with_help(
                key.pos,
                format!("`{name}` is not a valid environment name"),
                "use lowercase letters, digits and `-`, starting with a letter (it names containers and URLs)",
            );
            continue;
        }
        if let Some(env) = environment(r, name, value) {
            let from_at = child(value, &["from"]).unwrap_or(value.pos);
            let to_at = child(value, &["promote", "to"]).unwrap_or(value.pos);
            refs.push((
                env.name.clone(),
                (from_at, to_at),
                env.source.clone(),
                env.promote.to.clone(),
            ));
            out.push(env);
        }
    }
    let known: Vec<&str> = out.iter().map(|e| e.name.as_str()).collect();
    for (name, (from_at, to_at), source, to) in refs {
        let targets = [
            match source {
                Source::Environment(from) => Some(("from", from, from_at)),
                Source::Branch(_) => None,
            },
            to.map(|to| ("promote.to", to, to_at)),
        ];
        for (key, other, pos) in targets.into_iter().flatten() {
            if other == name {
                r.error(
                    pos,
                    format!("environments.{name}.{key} names the environment itself"),
                );
            } else if !known.contains(&other.as_str()) {
                r.error_with_help(
                    pos,
                    format!("environments.{name}.{key}: there is no environment `{other}`"),
                    format!("environments are: {}", known.join(", ")),
                );
            }
        }
    }
    out
}

/// Where the value under a path of keys starts, if the mapping has it.
fn child(node: &Node, path: &[&str]) -> Option<crate::Pos> {
    let mut at = node;
    for key in path {
        let crate::yaml::Value::Map(pairs) = &at.value else {
            return None;
        };
        at = pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)?;
    }
    Some(at.pos)
}

fn valid_name(name: &str) -> bool {
    crate::names::is_environment_name(name)
}

fn environment(r: &mut Reader, name: &str, node: &Node) -> Option<Environment> {
    let what = format!("environments.{name}");
    let f = r.fields(node, &what, ENVIRONMENT_KEYS)?;
    // Every part is read even after one fails, so all mistakes show at once.
    let source = source(r, &f, &what, node);
    let auto = optional(f.get("deploy"), |n| deploy_mode(r, n, &what)).map(|a| a.unwrap_or(true));
    let target = match f.get("target") {
        Some(n) => target(r, n, &what),
        None => {
            r.error_with_help(
                node.pos,
                format!("`{what}` has no `target`"),
                "add `target: { local: { command: ./app } }`, `{ docker: { image: NAME, port: 8080 } }` or `{ swarm: … }`",
            );
            None
        }
    };
    let health = optional(f.get("health"), |n| health(r, n, &what)).map(|h| {
        h.unwrap_or(Health {
            check: HealthCheck::Http("/".into()),
            timeout: DEFAULT_HEALTH_TIMEOUT,
        })
    });
    let port = optional(f.get("port"), |n| port(r, n, &format!("{what}.port")));
    let approval = optional(f.get("approval"), |n| approval(r, n, &what));
    let promote =
        optional(f.get("promote"), |n| promote(r, n, &what)).map(Option::unwrap_or_default);
    let production = optional(f.get("production"), |n| {
        r.bool(n, &format!("{what}.production"))
    })
    .map(|p| p.unwrap_or(false));
    let config = f
        .get("config")
        .map(|n| r.env(n, &format!("{what}.config")))
        .unwrap_or_default();
    let secrets = f
        .get("secrets")
        .map(|n| secret_names(r, n, &format!("{what}.secrets")))
        .unwrap_or_default();
    let smoke = f
        .get("smoke")
        .map(|n| {
            r.strings(n, &format!("{what}.smoke"))
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        })
        .unwrap_or_default();
    Some(Environment {
        name: name.to_string(),
        source: source?,
        auto: auto?,
        target: target?,
        config,
        secrets,
        health: health?,
        smoke,
        approval: approval?,
        promote: promote?,
        production: production?,
        port: port?,
    })
}

/// An optional key: absent is `Some(None)`, present and wrong is `None`.
fn optional<T>(node: Option<&Node>, read: impl FnOnce(&Node) -> Option<T>) -> Option<Option<T>> {
    match node {
        None => Some(None),
        Some(n) => read(n).map(Some),
    }
}

fn deploy_mode(r: &mut Reader, node: &Node, what: &str) -> Option<bool> {
    match r.string(node, &format!("{what}.deploy"))?.as_str() {
        "auto" => Some(true),
        "manual" => Some(false),
        other => {
            r.error_with_help(
                node.pos,
                format!("`{what}.deploy` is `{other}`"),
                "write `auto` (deploy each release at once) or `manual` (deploy when asked)",
            );
            None
        }
    }
}

fn source(r: &mut Reader, f: &Fields, what: &str, node: &Node) -> Option<Source> {
    match (f.get("branch"), f.get("from")) {
        (Some(b), None) => Some(Source::Branch(r.text(b, &format!("{what}.branch"))?)),
        (None, Some(e)) => Some(Source::Environment(r.text(e, &format!("{what}.from"))?)),
        (Some(_), Some(e)) => {
            r.error_with_help(
                e.pos,
                format!("`{what}` has both `branch` and `from`"),
                "an environment takes new releases of a branch or promotions from another environment, not both",
            );
            None
        }
        (None, None) => {
            r.error_with_help(
                node.pos,
                format!("`{what}` says neither `branch` nor `from`"),
                "add `branch: main` (take new releases of main) or `from: staging` (take promotions out of staging)",
            );
            None
        }
    }
}

fn target(r: &mut Reader, node: &Node, what: &str) -> Option<TargetSpec> {
    let what = format!("{what}.target");
    let f = r.fields(node, &what, TARGET_KINDS)?;
    let given: Vec<&str> = TARGET_KINDS
        .iter()
        .copied()
        .filter(|k| f.get(k).is_some())
        .collect();
    if given.len() != 1 {
        r.error_with_help(
            node.pos,
            format!("`{what}` must name exactly one kind, found {}", given.len()),
            "write one of `local:`, `docker:` or `swarm:`",
        );
        return None;
    }
    let kind = given[0];
    let body = f.get(kind)?;
    let what = format!("{what}.{kind}");
    if kind == "local" {
        let f = r.fields(body, &what, LOCAL_KEYS)?;
        let Some(command) = f.get("command") else {
            r.error_with_help(
                body.pos,
                format!("`{what}` has no `command`"),
                "say how to start the release, e.g. `command: ./target/release/app` (it runs in the release's artifacts with $PORT set)",
            );
            return None;
        };
        return Some(TargetSpec::Local {
            command: r.text(command, &format!("{what}.command"))?,
        });
    }
    let f = r.fields(body, &what, CONTAINER_KEYS)?;
    let image = match f.get("image") {
        Some(n) => Some(r.text(n, &format!("{what}.image"))?),
        None => None,
    };
    let port = match f.get("port") {
        Some(n) => port(r, n, &format!("{what}.port"))?,
        None => 8080,
    };
    if kind == "docker" {
        if let Some(n) = f.get("replicas") {
            r.error(n.pos, format!("`{what}.replicas`: a docker target runs one container; use `swarm` for replicas"));
            return None;
        }
        return Some(TargetSpec::Docker { image, port });
    }
    let replicas = match f.get("replicas") {
        Some(n) => r.count(n, &format!("{what}.replicas"), 100)?.max(1),
        None => 1,
    };
    Some(TargetSpec::Swarm {
        image,
        port,
        replicas,
    })
}

fn port(r: &mut Reader, node: &Node, what: &str) -> Option<u16> {
    let n = r.count(node, what, u32::from(u16::MAX))?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            r.error(
                node.pos,
                format!("`{what}` must be a port between 1 and 65535"),
            );
            None
        }
    }
}

fn health(r: &mut Reader, node: &Node, what: &str) -> Option<Health> {
    let what = format!("{what}.health");
    let f = r.fields(node, &what, HEALTH_KEYS)?;
    let check = match (f.get("http"), f.get("command")) {
        (Some(p), None) => {
            let path = r.text(p, &format!("{what}.http"))?;
            if !path.starts_with('/') {
                r.error_with_help(
                    p.pos,
                    format!("`{what}.http` must be a path"),
                    "write it from the root, e.g. `/healthz`",
                );
                return None;
            }
            HealthCheck::Http(path)
        }
        (None, Some(c)) => HealthCheck::Command(r.text(c, &format!("{what}.command"))?),
        _ => {
            r.error_with_help(
                node.pos,
                format!("`{what}` must have exactly one of `http` and `command`"),
                "e.g. `health: { http: /healthz, timeout: 30s }`",
            );
            return None;
        }
    };
    let timeout = match f.get("timeout") {
        Some(n) => r.duration(n, &format!("{what}.timeout"))?,
        None => DEFAULT_HEALTH_TIMEOUT,
    };
    Some(Health { check, timeout })
}

fn approval(r: &mut Reader, node: &Node, what: &str) -> Option<Approval> {
    let what = format!("{what}.approval");
    let f = r.fields(node, &what, APPROVAL_KEYS)?;
    let required = optional(f.get("required"), |n| {
        let required = r.count(n, &format!("{what}.required"), 20)?;
        if required == 0 {
            r.error(
                n.pos,
                format!("`{what}.required` must be at least 1 (leave `approval` out for none)"),
            );
            return None;
        }
        Some(required)
    })
    .map(|n| n.unwrap_or(1));
    let role = optional(f.get("role"), |n| {
        let role = r.text(n, &format!("{what}.role"))?;
        if ROLES.contains(&role.as_str()) {
            return Some(role);
        }
        r.error_with_help(
            n.pos,
            format!("`{what}.role` is `{role}`"),
            format!("roles are: {}", ROLES.join(", ")),
        );
        None
    });
    let group = optional(f.get("group"), |n| r.text(n, &format!("{what}.group")));
    let four_eyes = optional(f.get("four_eyes"), |n| {
        r.bool(n, &format!("{what}.four_eyes"))
    })
    .map(|b| b.unwrap_or(true));
    let expires = optional(f.get("expires"), |n| {
        r.duration(n, &format!("{what}.expires"))
    })
    .map(|d| d.unwrap_or(DEFAULT_APPROVAL_EXPIRY));
    let (role, group) = (role?, group?);
    Some(Approval {
        required: required?,
        // With neither named, approvers are those who may deploy: developers and admins.
        role: role.or_else(|| group.is_none().then(|| "developer".to_string())),
        group,
        four_eyes: four_eyes?,
        expires: expires?,
    })
}

fn promote(r: &mut Reader, node: &Node, what: &str) -> Option<Promote> {
    let what = format!("{what}.promote");
    let f = r.fields(node, &what, PROMOTE_KEYS)?;
    let merge = optional(f.get("merge"), |n| merge(r, n, &format!("{what}.merge")));
    let to = optional(f.get("to"), |n| r.text(n, &format!("{what}.to")));
    Some(Promote {
        merge: merge?,
        to: to?,
    })
}

fn merge(r: &mut Reader, node: &Node, what: &str) -> Option<Merge> {
    let m = r.fields(node, what, MERGE_KEYS)?;
    let into = match m.get("into") {
        Some(n) => r.text(n, &format!("{what}.into")),
        None => {
            r.error_with_help(
                node.pos,
                format!("`{what}` has no `into`"),
                "name the branch to merge into, e.g. `into: main`",
            );
            None
        }
    };
    let fast_forward_only = optional(m.get("mode"), |mode| {
        match r.string(mode, &format!("{what}.mode"))?.as_str() {
            "ff" | "fast-forward" => Some(true),
            "merge" => Some(false),
            other => {
                r.error_with_help(
                    mode.pos,
                    format!("`{what}.mode` is `{other}`"),
                    "write `ff` (fast-forward only) or `merge` (a merge commit when needed)",
                );
                None
            }
        }
    })
    .map(|ff| ff.unwrap_or(false));
    Some(Merge {
        into: into?,
        fast_forward_only: fast_forward_only?,
    })
}

fn secret_names(r: &mut Reader, node: &Node, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (name, pos) in r.strings(node, what) {
        if is_identifier(&name) {
            out.push(name);
        } else {
            r.error(
                pos,
                format!("`{name}` in `{what}` is not a valid variable name"),
            );
        }
    }
    out
}
