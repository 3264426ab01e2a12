//! Attacks through deployments and the processes around jobs (issue 12,
//! round 2): what a release runs on the server's host (its `local` process,
//! health commands, smoke tests) reaches for the admin token or writes into
//! the data directory; a job reads secrets from other processes' command
//! lines; a job leaves a file in `/dev/shm` for the next one, or looks at the
//! host's terminals; an agent's work directory is open to other users.
//!
//! Probes print `PROBE NAME refused` or `PROBE NAME LEAKED`, as in jobs.rs.

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::{SERVED, agent_token, log_of, probes};
use crate::common::server::{AgentProcess, Remote, ServerProcess, commit_file};
use crate::common::service::{environment, get, status, succeeded};

fn result_of<'a>(found: &'a [(String, String)], name: &str) -> &'a str {
    found
        .iter()
        .find(|(n, _)| n == name)
        .map_or("missing", |(_, r)| r.as_str())
}

fn assert_all_refused(found: &[(String, String)], names: &[&str]) {
    let leaked: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (*n, result_of(found, n)))
        .filter(|(_, r)| *r != "refused")
        .collect();
    assert!(leaked.is_empty(), "reached (or not probed): {leaked:?}");
}

/// The `local` process of a release: probes what it can reach from the
/// release's tree (`$PWD` is `<data>/releases/<run>`), then serves it.
const LOCAL_ATTACK: &str = r#"
D=$(dirname "$(dirname "$PWD")")
probe() { n=$1; shift; if sh -c "$@" >/dev/null 2>&1; then echo "PROBE $n LEAKED"; else echo "PROBE $n refused"; fi; }
probe admin-token 'test -n "$(cat "$0/admin.token")"' "$D"
probe secret-key 'test -n "$(cat "$0/secret.key")"' "$D"
probe database 'test -n "$(head -c 16 "$0/slipway.db")"' "$D"
probe write-data-dir 'echo pwned > "$0/pwned"' "$D"
probe write-release 'echo pwned > "$PWD/pwned"'
probe signal-server 'kill -0 "$SERVER_PID"'
probe home-not-writable '! touch "$HOME/.probe"'
probe tmp-not-writable '! touch "${TMPDIR:-/nonexistent}/.probe"'
echo "PROBE done"
exec python3 -m http.server "$PORT" --bind 127.0.0.1
"#;

/// One job whose artifacts are the page and the attack; `dev` runs the attack.
fn local_pipeline(server_pid: u32) -> String {
    format!(
        r#"jobs:
  page:
    steps:
      - echo served > index.html
    artifacts: [index.html, attack.sh]
environments:
  dev:
    branch: main
    config: {{ SERVER_PID: "{server_pid}" }}
    target: {{ local: {{ command: sh attack.sh }} }}
    health: {{ http: /index.html, timeout: 20s }}
"#
    )
}

/// Every `local` process log of the environments of `data`.
fn deployed_logs(data: &Path) -> String {
    let mut text = String::new();
    for project in std::fs::read_dir(data.join("deploy"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for file in std::fs::read_dir(project.path().join("dev"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "log") {
                text.push_str(&std::fs::read_to_string(file.path()).unwrap_or_default());
            }
        }
    }
    text
}

fn dev_health(server: &ServerProcess) -> serde_json::Value {
    environment(&status(server, "demo"), "dev")["health"].clone()
}

#[test]
fn a_deployed_local_process_cannot_read_the_admin_token_or_write_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    commit_file(&remote.work, "attack.sh", LOCAL_ATTACK, "attack");
    remote.commit(
        ".slipway.yml",
        &local_pipeline(server.child.id()),
        "deploy it",
    );
    remote.push();
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--wait"]));
    server.wait_until("dev is healthy", Duration::from_secs(60), || {
        dev_health(&server) == "healthy"
    });
    let found = probes(&deployed_logs(&data));
    // It still serves its release, from the release's tree.
    let url = environment(&status(&server, "demo"), "dev")["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(
        get(&format!("{url}/index.html")).as_deref(),
        Some("served\n")
    );
    assert!(
        !data.join("pwned").exists(),
        "it wrote into the data directory"
    );
    assert_all_refused(
        &found,
        &[
            "admin-token",
            "secret-key",
            "database",
            "write-data-dir",
            "write-release",
            "signal-server",
            "home-not-writable",
            "tmp-not-writable",
        ],
    );
}

/// [`SERVED`] with its health check (`health`) and smoke tests (`smoke`) given.
fn checked_pipeline(health: &str, smoke: &str) -> String {
    SERVED.replace(
        "    health: { http: /index.html }\n",
        &format!("    health: {health}\n    smoke: [{smoke}]\n"),
    )
}

/// A command that leaves a mark in the data directory and tells the admin
/// token on its way out (a failing check's output is in the deployment's reason).
fn stealing(data: &Path, mark: &str) -> String {
    let d = data.display();
    format!("\"echo pwned > {d}/{mark}; cat {d}/admin.token >&2; exit 1\"")
}

/// Pushes a new release of `pipeline` and waits until its deployment to dev ended.
fn deploy_next(server: &ServerProcess, remote: &Remote, pipeline: &str, release: &str) {
    remote.commit(".slipway.yml", pipeline, &format!("release {release}"));
    remote.push();
    succeeded(&server.cli(&["trigger", "demo", "--wait"]));
    server.wait_until(
        &format!("release {release}'s deployment to end"),
        Duration::from_secs(60),
        || {
            let dev = environment(&status(server, "demo"), "dev").clone();
            dev["latest"]["release"] == release
                && ["succeeded", "rolled_back", "failed"]
                    .iter()
                    .any(|s| dev["latest"]["state"] == *s)
        },
    );
}

#[test]
fn health_and_smoke_commands_cannot_read_the_admin_token_or_write_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    let http = "{ http: /index.html, timeout: 20s }";
    let remote = Remote::new(tmp.path(), &checked_pipeline(http, "\"true\""));
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--wait"]));
    server.wait_until("release 1 is live", Duration::from_secs(60), || {
        dev_health(&server) == "healthy"
    });
    let admin = server.token.clone();

    let health = format!(
        "{{ command: {}, timeout: 2s }}",
        stealing(&data, "pwned-health")
    );
    deploy_next(
        &server,
        &remote,
        &checked_pipeline(&health, "\"true\""),
        "2",
    );
    let smoke = stealing(&data, "pwned-smoke");
    deploy_next(&server, &remote, &checked_pipeline(http, &smoke), "3");

    let told = [
        server.json(&["audit", "-p", "demo"]),
        server.json(&["deployments", "-p", "demo", "dev"]),
    ]
    .map(|v| v.to_string())
    .concat();
    for d in server
        .json(&["deployments", "-p", "demo", "dev"])
        .as_array()
        .expect("deployments")
    {
        eprintln!("deployment {}: {} {}", d["id"], d["state"], d["reason"]);
    }
    for mark in ["pwned-health", "pwned-smoke"] {
        let wrote = data.join(mark).exists();
        eprintln!("PROBE {mark} {}", if wrote { "LEAKED" } else { "refused" });
        assert!(!wrote, "a command wrote {mark} into the data directory");
    }
    let leaked = told.contains(&admin);
    eprintln!(
        "PROBE admin-token-in-reason {}",
        if leaked { "LEAKED" } else { "refused" }
    );
    assert!(!leaked, "a check's output told the admin token");
    // Both failing releases were rolled back; release 1 kept serving.
    let dev = environment(&status(&server, "demo"), "dev").clone();
    assert_eq!(dev["live"]["release"], "1", "{dev}");
    assert_eq!(dev["latest"]["state"], "rolled_back", "{dev}");
    let url = dev["url"].as_str().expect("url");
    assert!(
        get(&format!("{url}/index.html")).is_some(),
        "dev stopped serving"
    );
}

/// A fresh PostgreSQL database for one server, dropped at the end.
struct Database {
    admin: String,
    name: String,
}

impl Database {
    fn create() -> Database {
        let admin = std::env::var("SLIPWAY_TEST_DATABASE_URL").expect(
            "SLIPWAY_TEST_DATABASE_URL is not set: run scripts/test, which starts PostgreSQL and sets it",
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("slipway_hostile_{}_{nanos}", std::process::id());
        let db = Database { admin, name };
        db.psql(&format!("CREATE DATABASE {}", db.name));
        db
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args([&self.admin, "-q", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        let (base, _) = self.admin.rsplit_once('/').expect("a database URL");
        format!("{base}/{}", self.name)
    }

    /// What identifies the password in a command line: `:PASSWORD@`.
    fn password_needle(&self) -> String {
        let (_, rest) = self.admin.split_once("://").expect("a database URL");
        let (userinfo, _) = rest.split_once('@').expect("a password in the URL");
        let (_, password) = userinfo.split_once(':').expect("a password in the URL");
        format!(":{password}@")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Reads every process's command line and looks for the needles (written
/// to a file by the shell's own printf, so no command line of the job holds them).
const CMDLINE_ATTACK: &str = r#"
printf '%s\n' "$AGENT_TOKEN" "$DB_NEEDLE" > needles
for f in /proc/[0-9]*/cmdline; do { tr '\0' ' ' < "$f"; } 2>/dev/null; echo; done > cmdlines
grep -E 'slipway (agent|server) ' cmdlines | sed 's/^/SEEN /'
if grep -qF -f needles cmdlines; then echo "PROBE cmdline LEAKED"; else echo "PROBE cmdline refused"; fi
echo "PROBE done"
"#;

#[test]
fn a_job_finds_no_agent_token_or_database_password_in_command_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = Database::create();
    let url = db.url();
    let server = ServerProcess::start(
        &tmp.path().join("data"),
        &["--workers", "0", "--database-url", &url],
    );
    let agent_token = agent_token(&server, "runner-1");
    let agent = AgentProcess::start_with(
        &server,
        "cmdline",
        &tmp.path().join("agent"),
        &["--token", &agent_token],
    );
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    commit_file(&remote.work, "attack.sh", CMDLINE_ATTACK, "attack");
    let pipeline = format!(
        "env:\n  AGENT_TOKEN: \"{agent_token}\"\n  DB_NEEDLE: \"{}\"\njobs:\n  attack:\n    steps:\n      - run: sh attack.sh\n",
        db.password_needle()
    );
    remote.commit(".slipway.yml", &pipeline, "pipeline");
    remote.push();
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--wait"]));
    let log = log_of(&server, "demo/1");
    eprintln!("{log}");
    let found = probes(&log);
    // The job did see both processes' command lines, only without the
    // secrets; and it ran, so the agent's token and the server's database
    // still work from the environment.
    let data = tmp.path().join("data");
    assert!(
        log.contains("agent --name cmdline")
            && log.contains(&format!(
                "server --listen 127.0.0.1:0 --data-dir {}",
                data.display()
            )),
        "the job did not see the agent's and server's command lines:\n{log}"
    );
    assert_all_refused(&found, &["cmdline"]);
    drop(agent);
}

/// A pseudo-terminal of the host, open while the guard lives (a terminal of
/// the server's user a job must not reach).
struct HostTerminal(std::process::Child, String);

impl HostTerminal {
    fn open() -> HostTerminal {
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import os, sys; m, s = os.openpty(); print(os.ttyname(s), flush=True); sys.stdin.read()",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("pty name");
        HostTerminal(child, line.trim().to_string())
    }
}

impl Drop for HostTerminal {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn a_job_cannot_see_another_jobs_shm_file_or_the_hosts_terminals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let terminal = HostTerminal::open();
    let name = format!("slipway-hostile-{}", std::process::id());
    let shm = PathBuf::from("/dev/shm").join(&name);
    let pipeline = format!(
        r#"jobs:
  write:
    steps:
      - echo left-behind > /dev/shm/{name}
  read:
    needs: [write]
    steps:
      - if cat /dev/shm/{name}; then echo "PROBE shm LEAKED"; else echo "PROBE shm refused"; fi
      - if test -e {tty}; then echo "PROBE host-terminal LEAKED"; else echo "PROBE host-terminal refused"; fi
      - python3 -c 'import os; os.openpty()' && echo "PROBE own-terminal works"
      - echo "PROBE done"
"#,
        tty = terminal.1
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "2"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let log = log_of(&server, "demo/1");
    let on_host = shm.exists();
    let _ = std::fs::remove_file(&shm);
    assert!(out.status.success(), "{log}");
    let found = probes(&log);
    assert_eq!(result_of(&found, "own-terminal"), "works", "{log}");
    assert!(!on_host, "the job's /dev/shm file is the host's");
    assert_all_refused(&found, &["shm", "host-terminal"]);
}

#[test]
fn an_agents_work_directory_is_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("agent");
    // What an older agent (or a hand) left open.
    std::fs::create_dir_all(work.join("cache/1")).expect("mkdir");
    std::fs::write(work.join("cache/1/entry"), "cached").expect("write");
    for (path, mode) in [
        ("", 0o755),
        ("cache", 0o755),
        ("cache/1", 0o755),
        ("cache/1/entry", 0o644),
    ] {
        std::fs::set_permissions(work.join(path), std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    let agent = AgentProcess::start(&server, "private", &work);
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    server.add_project(&remote, &[]);
    succeeded(&server.cli(&["trigger", "demo", "--wait"]));
    drop(agent);
    let mut open = Vec::new();
    let mut stack = vec![work.clone()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        // Workspaces get umask 022's modes on purpose (images built from them
        // run as another user); everything else is the agent's alone.
        let workspace = path
            .strip_prefix(&work)
            .is_ok_and(|p| p.starts_with("work"));
        if mode & 0o077 != 0 && !workspace {
            open.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .expect("ls")
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    eprintln!(
        "PROBE open-entries {}",
        if open.is_empty() { "refused" } else { "LEAKED" }
    );
    assert!(open.is_empty(), "entries others may read: {open:#?}");
}
