//! `services:` — containers started beside a job for its integration and
//! system tests (a database, a cache, the app under test), the way GitLab CI
//! services and GitHub Actions service containers work:
//!
//! ```yaml
//! services:
//!   db:
//!     image: slipway/postgres:latest
//!     env: { POSTGRES_PASSWORD: test }
//!     ports: [5432]                # or "15432:5432" for a fixed host port
//!     ready: { port: 5432, timeout: 60s }   # or { run: "pg_isready" }
//! ```
//!
//! A service is only an image, its variables, its command and its ports: it
//! has no key for host paths, the Docker socket or privileges, and asking for
//! one is an error here, before anything runs.

use std::time::Duration;

use crate::diagnostic::Pos;
use crate::model::Env;
use crate::reader::{Reader, is_identifier};
use crate::yaml::{Node, Value};

const SERVICE_KEYS: &[&str] = &["image", "env", "secrets", "command", "ports", "ready"];
const READY_KEYS: &[&str] = &["port", "run", "timeout"];
/// What other tools let a service have and Slipway never gives one: each
/// would hand a job's service the host (its files, the engine, the kernel).
const REFUSED_KEYS: &[&str] = &[
    "volumes",
    "mounts",
    "privileged",
    "cap_add",
    "devices",
    "options",
    "network_mode",
    "pid",
    "ipc",
    "security_opt",
    "userns_mode",
    "user",
];
const MAX_SERVICES: usize = 10;
/// How long a service may take to become ready unless it says otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a service may ask to wait for.
const MAX_READY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One container started beside a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// A DNS label: what container steps reach it by.
    pub name: String,
    pub pos: Pos,
    /// A local image; Slipway never pulls.
    pub image: String,
    pub env: Env,
    /// Names of the run's secrets the service gets as variables.
    pub secrets: Vec<String>,
    /// Arguments to the image's entrypoint; empty for the image's own command.
    pub command: Vec<String>,
    pub ports: Vec<Port>,
    pub ready: Ready,
}

impl Service {
    /// The prefix of the variables that tell steps where the service is:
    /// `DB` for `db`, `MY_CACHE` for `my-cache`.
    pub fn env_prefix(&self) -> String {
        self.name.to_ascii_uppercase().replace('-', "_")
    }
}

/// A container port reachable from the host, on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub container: u16,
    /// A fixed host port; `None` for a free one chosen when the job starts
    /// (so two jobs with the same service can run at once).
    pub host: Option<u16>,
}

/// When a service counts as ready, and how long to wait for that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub check: ReadyCheck,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// The container is running (a service without ports or a check).
    Started,
    /// The container accepts TCP connections on this port.
    Port(u16),
    /// This command, run in the service's container, exits with 0.
    Run(String),
}

/// Reads a job's `services:` (`job` is `jobs.NAME`).
pub(crate) fn read(r: &mut Reader, node: &Node, job: &str) -> Vec<Service> {
    let what = format!("{job}.services");
    let entries = r.entries(node, &what);
    if entries.len() > MAX_SERVICES {
        r.error(
            node.pos,
            format!(
                "`{what}` has {} services; at most {MAX_SERVICES} are allowed",
                entries.len()
            ),
        );
        return Vec::new();
    }
    entries
        .into_iter()
        .filter_map(|(name, key, value)| {
            let name_ok = check_name(name).map_err(|e| r.error_with_help(key.pos, e.0, e.1));
            let service = service(r, name, key.pos, value, &format!("{what}.{name}"));
            name_ok.ok().and(service)
        })
        .collect()
}

/// A DNS label (RFC 1123): steps reach the service by this name.
fn check_name(name: &str) -> Result<(), (String, &'static str)> {
    let help = "name services with lowercase letters, digits and `-` (at most 63), starting with a letter: `db`, `redis`, `app-under-test`";
    let valid = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err((
            format!("service name `{name}` is not a host name steps could reach"),
            help,
        ))
    }
}

fn service(r: &mut Reader, name: &str, pos: Pos, node: &Node, what: &str) -> Option<Service> {
    let known: Vec<&str> = SERVICE_KEYS.iter().chain(REFUSED_KEYS).copied().collect();
    let f = r.fields(node, what, &known)?;
    let mut refused = false;
    for key in REFUSED_KEYS {
        if let Some(n) = f.get(key) {
            refused = true;
            r.error_with_help(
                n.pos,
                format!("`{what}.{key}`: a service cannot have `{key}`"),
                "services get no host paths, no Docker socket and no privileges; \
                 pass what a service needs through `env`, `secrets` and `command`",
            );
        }
    }
    let Some(image_node) = f.get("image") else {
        r.error_with_help(
            pos,
            format!("`{what}` needs `image`"),
            "name a local image, e.g. `image: slipway/postgres:latest`",
        );
        return None;
    };
    let image = r.text(image_node, &format!("{what}.image"));
    let ports = f
        .get("ports")
        .map(|n| ports(r, n, &format!("{what}.ports")))
        .unwrap_or_default();
    let ready = match f.get("ready") {
        Some(n) => ready(r, n, &format!("{what}.ready"))?,
        None => Ready {
            check: ports
                .first()
                .map_or(ReadyCheck::Started, |p| ReadyCheck::Port(p.container)),
            timeout: DEFAULT_READY_TIMEOUT,
        },
    };
    let service = Service {
        name: name.to_string(),
        pos,
        image: image?,
        env: f
            .get("env")
            .map(|n| r.env(n, &format!("{what}.env")))
            .unwrap_or_default(),
        secrets: f
            .get("secrets")
            .map(|n| secrets(r, n, &format!("{what}.secrets")))
            .unwrap_or_default(),
        command: f
            .get("command")
            .map(|n| command(r, n, &format!("{what}.command")))
            .unwrap_or_default(),
        ports,
        ready,
    };
    (!refused).then_some(service)
}

/// `[5432, "15432:5432"]`: container ports, each with a fixed host port if given.
fn ports(r: &mut Reader, node: &Node, what: &str) -> Vec<Port> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    let mut ports: Vec<Port> = Vec::new();
    for item in items {
        let Some(port) = port_mapping(r, item, what) else {
            continue;
        };
        if ports.iter().any(|p| p.container == port.container) {
            r.error(
                item.pos,
                format!("`{what}` lists port {} twice", port.container),
            );
        } else {
            ports.push(port);
        }
    }
    ports
}

fn port_mapping(r: &mut Reader, node: &Node, what: &str) -> Option<Port> {
    let help = "write a container port (`5432`), or `\"HOST:CONTAINER\"` (`\"15432:5432\"`) for a fixed port on the host";
    if let Some(n) = node.as_u64() {
        return port_number(r, node, n.to_string().as_str(), what, help).map(|container| Port {
            container,
            host: None,
        });
    }
    let text = r.text(node, what)?;
    let Some((host, container)) = text.split_once(':') else {
        return port_number(r, node, &text, what, help).map(|container| Port {
            container,
            host: None,
        });
    };
    let host = port_number(r, node, host, what, help);
    let container = port_number(r, node, container, what, help);
    Some(Port {
        container: container?,
        host: Some(host?),
    })
}

fn port_number(r: &mut Reader, node: &Node, text: &str, what: &str, help: &str) -> Option<u16> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Some(port),
        _ => {
            r.error_with_help(
                node.pos,
                format!("`{what}`: `{text}` is not a port (1 to 65535)"),
                help,
            );
            None
        }
    }
}

/// `{ port: 5432 }` or `{ run: "pg_isready" }`, with an optional `timeout`.
fn ready(r: &mut Reader, node: &Node, what: &str) -> Option<Ready> {
    let f = r.fields(node, what, READY_KEYS)?;
    let timeout = match f.get("timeout") {
        Some(n) => {
            let timeout = r.duration(n, &format!("{what}.timeout"))?;
            if timeout > MAX_READY_TIMEOUT {
                r.error(
                    n.pos,
                    format!(
                        "`{what}.timeout` is longer than {}",
                        humantime::format_duration(MAX_READY_TIMEOUT)
                    ),
                );
                return None;
            }
            timeout
        }
        None => DEFAULT_READY_TIMEOUT,
    };
    let check = match (f.get("port"), f.get("run")) {
        (Some(_), Some(_)) => {
            r.error_with_help(
                f.pos,
                format!("`{what}` takes `port` or `run`, not both"),
                "`port` waits for a TCP port; `run` for a command in the service to exit with 0",
            );
            return None;
        }
        (Some(n), None) => {
            let port = match n.as_u64() {
                Some(p) => p.to_string(),
                None => r.text(n, &format!("{what}.port"))?,
            };
            ReadyCheck::Port(port_number(
                r,
                n,
                &port,
                &format!("{what}.port"),
                "name the container port the service listens on",
            )?)
        }
        (None, Some(n)) => ReadyCheck::Run(r.text(n, &format!("{what}.run"))?),
        (None, None) => ReadyCheck::Started,
    };
    Some(Ready { check, timeout })
}

/// `command: ["-c", "fsync=off"]` or one string split on whitespace.
fn command(r: &mut Reader, node: &Node, what: &str) -> Vec<String> {
    match &node.value {
        Value::Scalar(_) => r
            .text(node, what)
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        _ => r.strings(node, what).into_iter().map(|(s, _)| s).collect(),
    }
}

fn secrets(r: &mut Reader, node: &Node, what: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (name, pos) in r.strings(node, what) {
        if !is_identifier(&name) {
            r.error(
                pos,
                format!("secret name `{name}` is not a valid variable name"),
            );
        } else if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// What holds across a job's services: no fixed host port asked for twice,
/// none below 1024 and none in a matrix job (whose cells run at once), and
/// every secret a service takes is one the job gets (`jobs.NAME.secrets`
/// decides what reaches the job, and masks it in logs).
pub(crate) fn check(r: &mut Reader, job: &crate::Job, what: &str, in_matrix: bool) {
    for service in &job.services {
        for name in service.secrets.iter().filter(|s| !job.secrets.contains(s)) {
            r.error_with_help(
                service.pos,
                format!(
                    "service `{}` takes the secret `{name}`, which `{what}.secrets` does not list",
                    service.name
                ),
                format!(
                    "add `{name}` to `{what}.secrets`: a job's services get only the job's secrets"
                ),
            );
        }
    }
    check_host_ports(r, &job.services, what, in_matrix);
}

/// The lowest host port a service may fix: those below are the host's own
/// services' (Docker binds them as root for anyone who asks).
const MIN_HOST_PORT: u16 = 1024;

fn check_host_ports(r: &mut Reader, services: &[Service], job: &str, in_matrix: bool) {
    let mut seen: Vec<u16> = Vec::new();
    for service in services {
        for host in service.ports.iter().filter_map(|p| p.host) {
            let at = format!("`{job}.services.{}.ports`", service.name);
            if host < MIN_HOST_PORT {
                r.error_with_help(
                    service.pos,
                    format!("{at}: host port {host} is below {MIN_HOST_PORT}, where the host's own services listen"),
                    "write only the container port (`ports: [80]`): the job gets a free host port in `NAME_PORT`",
                );
            }
            if in_matrix {
                r.error_with_help(
                    service.pos,
                    format!("{at}: a matrix job cannot fix host port {host}: its cells run at once and would all ask for it"),
                    "write only the container port: each cell gets a free host port in `NAME_PORT`",
                );
            }
            if seen.contains(&host) {
                r.error(
                    service.pos,
                    format!("`{job}.services`: host port {host} is asked for twice"),
                );
            }
            seen.push(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(yaml: &str) -> Result<Vec<Service>, String> {
        let file = format!("jobs:\n  it:\n    steps: [{{ run: 'true' }}]\n    services:\n{yaml}");
        crate::parse(&file)
            .map(|p| p.jobs[0].services.clone())
            .map_err(|d| crate::render_all(".slipway.yml", &file, &d))
    }

    #[test]
    fn a_database_with_its_port_and_check() {
        let s = services(
            "      db:\n        image: slipway/postgres:latest\n        env: { POSTGRES_PASSWORD: test }\n        \
             ports: [5432, \"15433:8080\"]\n        ready: { run: pg_isready, timeout: 20s }\n        command: -c fsync=off\n",
        )
        .expect("valid");
        assert_eq!(s[0].name, "db");
        assert_eq!(s[0].env_prefix(), "DB");
        assert_eq!(
            s[0].ports,
            [
                Port {
                    container: 5432,
                    host: None
                },
                Port {
                    container: 8080,
                    host: Some(15433)
                }
            ]
        );
        assert_eq!(s[0].ready.check, ReadyCheck::Run("pg_isready".into()));
        assert_eq!(s[0].ready.timeout, Duration::from_secs(20));
        assert_eq!(s[0].command, ["-c", "fsync=off"]);
    }

    #[test]
    fn the_first_port_is_the_default_check() {
        let s =
            services("      my-cache:\n        image: x\n        ports: [6379]\n").expect("valid");
        assert_eq!(s[0].ready.check, ReadyCheck::Port(6379));
        assert_eq!(s[0].ready.timeout, DEFAULT_READY_TIMEOUT);
        assert_eq!(s[0].env_prefix(), "MY_CACHE");
        let s = services("      app:\n        image: x\n").expect("valid");
        assert_eq!(s[0].ready.check, ReadyCheck::Started);
    }

    #[test]
    fn names_must_be_host_names() {
        for bad in ["DB", "db_1", "1db", "db-", "d.b"] {
            let err = services(&format!("      {bad}:\n        image: x\n")).expect_err(bad);
            assert!(
                err.contains("not a host name") && err.contains("5:7"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_ports_say_where() {
        let err = services(
            "      db:\n        image: x\n        ports: [0, \"a:5432\", 70000, 5432, 5432]\n",
        )
        .expect_err("invalid");
        assert!(err.contains("`0` is not a port"), "{err}");
        assert!(err.contains("`a` is not a port"), "{err}");
        assert!(err.contains("`70000` is not a port"), "{err}");
        assert!(err.contains("lists port 5432 twice"), "{err}");
        assert!(err.contains("7:17"), "{err}");
        let err = services(
            "      db:\n        image: x\n        imag: y\n        ready: { port: 1, run: x }\n",
        )
        .expect_err("invalid");
        assert!(
            err.contains("unknown key `imag`") && err.contains("did you mean `image`"),
            "{err}"
        );
        assert!(err.contains("`port` or `run`, not both"), "{err}");
    }

    #[test]
    fn host_powers_are_refused() {
        for key in [
            "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]",
            "privileged: true",
            "user: root",
        ] {
            let err =
                services(&format!("      db:\n        image: x\n        {key}\n")).expect_err(key);
            assert!(
                err.contains("a service cannot have") && err.contains("7:"),
                "{err}"
            );
            assert!(err.contains("no Docker socket"), "{err}");
        }
    }

    #[test]
    fn secrets_come_from_the_job() {
        let err = services("      db:\n        image: x\n        secrets: [DB_PASSWORD]\n")
            .expect_err("invalid");
        assert!(err.contains("`jobs.it.secrets` does not list"), "{err}");
        let file = "jobs:\n  it:\n    secrets: [DB_PASSWORD]\n    steps: [{ run: 'true' }]\n    \
                    services:\n      db: { image: x, secrets: [DB_PASSWORD] }\n";
        let p = crate::parse(file).expect("valid");
        assert_eq!(p.jobs[0].services[0].secrets, ["DB_PASSWORD"]);
        assert!(p.jobs[0].needs_docker());
    }

    #[test]
    fn privileged_host_ports_and_fixed_ports_in_a_matrix_are_refused() {
        let err = services("      web:\n        image: x\n        ports: [\"80:8080\"]\n")
            .expect_err("invalid");
        assert!(err.contains("host port 80 is below 1024"), "{err}");
        let file = "jobs:\n  it:\n    matrix: { pg: [\"15\", \"16\"] }\n    steps: [{ run: 'true' }]\n    \
                    services:\n      db: { image: x, ports: [\"15432:5432\"] }\n";
        let err = crate::parse(file)
            .map_err(|d| crate::render_all(".slipway.yml", file, &d))
            .expect_err("invalid");
        assert!(
            err.contains("a matrix job cannot fix host port 15432"),
            "{err}"
        );
        let ok = file.replace("\"15432:5432\"", "5432");
        assert!(crate::parse(&ok).is_ok());
    }

    #[test]
    fn fixed_host_ports_are_not_shared() {
        let err = services("      a:\n        image: x\n        ports: [\"9000:1\"]\n      b:\n        image: x\n        ports: [\"9000:2\"]\n")
            .expect_err("invalid");
        assert!(err.contains("host port 9000 is asked for twice"), "{err}");
    }
}
