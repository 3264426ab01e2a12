//! A job has only its own powers: a pipeline step that reaches for the
//! server's (or an agent's) data directory, keys, tokens, database, other
//! projects' workspaces and caches, the Docker engine, or tries to signal
//! the process that runs it, is refused; and the server keeps working.
//!
//! Each probe prints `PROBE NAME refused` or `PROBE NAME LEAKED`; the tests
//! assert on those lines in the run's log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::support::{
    SERVED, agent_post, assert_all_refused, claim, image_job_queued, live_commit, log_of, probes,
    start_upload, wait_for_end,
};
use crate::common::server::{AgentProcess, Remote, ServerProcess, commit_file};
use crate::common::{BUSYBOX, require_docker};

/// The attacks of a step on the machine it runs on. `$D` is the directory
/// that holds the workspaces' parent: the server's data directory or the agent's.
const HOST_ATTACK: &str = r#"
D=$(dirname "$(dirname "$SLIPWAY_WORKSPACE")")
probe() { n=$1; shift; if sh -c "$@" >/dev/null 2>&1; then echo "PROBE $n LEAKED"; else echo "PROBE $n refused"; fi; }
probe admin-token 'test -n "$(cat "$0/admin.token")"' "$D"
probe secret-key 'test -n "$(cat "$0/secret.key")"' "$D"
probe database 'test -n "$(head -c 16 "$0/slipway.db")"' "$D"
probe other-workspace 'cat "$0"/work/victim-ws/stolen' "$D"
probe other-cache 'cat "$0"/cache/999/stolen' "$D"
probe other-run-source 'cat "$0"/runs/999/source/stolen' "$D"
probe list-workspaces 'ls "$0"/work' "$D"
probe write-data-dir 'echo pwned > "$0"/pwned' "$D"
probe process-environ 'grep -q SLIPWAY "/proc/$VICTIM_PID/environ"'
probe docker-engine 'curl -sf --unix-socket /var/run/docker.sock http://docker/version'
probe raw-disk 'test "$(head -c 512 /dev/vda | wc -c)" = 512'
probe admin-api 'curl -sf -o /dev/null -H "Authorization: Bearer $(cat "$0/admin.token")" -H "Content-Type: application/json" -d "{\"name\":\"x\",\"role\":\"admin\"}" "$SERVER/api/v1/tokens"' "$D"
probe signal 'kill -0 "$VICTIM_PID"'
probe kill 'kill -KILL "$VICTIM_PID"'
echo "PROBE done"
"#;

/// The attacks of a container step: the data directory must not be there at all.
const CONTAINER_ATTACK: &str = r#"
probe() { n=$1; shift; if sh -c "$@" >/dev/null 2>&1; then echo "PROBE $n LEAKED"; else echo "PROBE $n refused"; fi; }
probe data-dir-mounted 'find / -xdev \( -name admin.token -o -name secret.key -o -name slipway.db \) 2>/dev/null | grep -q .'
probe data-dir-path 'test -e "$DATA_DIR"'
probe docker-engine 'test -S /var/run/docker.sock || test -S /run/docker.sock'
probe runs-as-root 'test "$(id -u)" = 0'
touch made-in-container
probe root-owned-file 'test "$(stat -c %u made-in-container)" = 0'
probe home-not-writable '! touch "$HOME/.probe"'
echo "PROBE done"
"#;

/// Plants what belongs to others where a job could look for it.
fn plant_victims(dir: &Path) {
    for victim in ["work/victim-ws", "cache/999", "runs/999/source"] {
        std::fs::create_dir_all(dir.join(victim)).expect("mkdir");
        std::fs::write(dir.join(victim).join("stolen"), "another project's file").expect("write");
    }
}

fn pipeline(env: &[(&str, &str)], image: Option<&str>) -> String {
    let env: String = env
        .iter()
        .map(|(k, v)| format!("  {k}: \"{v}\"\n"))
        .collect();
    let image = image
        .map(|i| format!("    image: {i}\n"))
        .unwrap_or_default();
    format!("env:\n{env}jobs:\n  attack:\n{image}    steps:\n      - run: sh attack.sh\n")
}

/// Pushes the attack, runs it to its end, and returns its probes.
fn run_attack(
    server: &ServerProcess,
    remote: &Remote,
    pipeline: &str,
    attack: &str,
) -> Vec<(String, String)> {
    commit_file(&remote.work, "attack.sh", attack, "attack");
    remote.commit(".slipway.yml", pipeline, "pipeline");
    remote.push();
    server.add_project(remote, &[]);
    let out = server.cli(&["trigger", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bounded: an attack that kills the agent would leave the run waiting for its lease.
    wait_for_end(server, "demo/1", Duration::from_secs(60));
    probes(&log_of(server, "demo/1"))
}

fn assert_server_works(server: &ServerProcess, data: &Path) {
    let out = server.cli(&["runs", "demo"]);
    assert!(
        out.status.success(),
        "the server stopped answering: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !data.join("pwned").exists(),
        "the job wrote into the data directory"
    );
}

#[test]
fn a_host_step_on_a_server_worker_cannot_reach_the_servers_powers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    plant_victims(&data);
    let pid = server.child.id().to_string();
    let pipeline = pipeline(&[("SERVER", &server.url), ("VICTIM_PID", &pid)], None);
    let found = run_attack(&server, &remote, &pipeline, HOST_ATTACK);
    assert_server_works(&server, &data);
    assert_all_refused(&found);
}

#[test]
fn a_host_step_on_an_agent_cannot_reach_the_agents_powers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let agent_dir = tmp.path().join("agent");
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    let mut agent = AgentProcess::start(&server, "hostile", &agent_dir);
    plant_victims(&agent_dir);
    let pid = agent.child.id().to_string();
    let pipeline = pipeline(&[("SERVER", &server.url), ("VICTIM_PID", &pid)], None);
    let found = run_attack(&server, &remote, &pipeline, HOST_ATTACK);
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "the job killed its agent"
    );
    assert!(
        !agent_dir.join("pwned").exists(),
        "the job wrote into the agent's directory"
    );
    assert_all_refused(&found);
    agent.kill9();
}

#[test]
fn a_container_step_gets_only_its_workspace_and_no_root() {
    require_docker();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    let data_dir = data.display().to_string();
    let pipeline = pipeline(&[("DATA_DIR", &data_dir)], Some(BUSYBOX));
    let found = run_attack(&server, &remote, &pipeline, CONTAINER_ATTACK);
    assert_server_works(&server, &data);
    assert_all_refused(&found);
}

/// The example service's kind of job: cargo (through rustup's proxies) and
/// python on the host of a server worker still work inside the sandbox.
#[test]
fn a_cargo_and_python_host_job_still_builds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    commit_file(
        &remote.work,
        "Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
        "crate",
    );
    std::fs::create_dir_all(remote.work.join("src")).expect("mkdir");
    commit_file(
        &remote.work,
        "src/main.rs",
        "fn main() { println!(\"tiny says hi\"); }\n",
        "main",
    );
    remote.commit(
        ".slipway.yml",
        "jobs:\n  build:\n    steps:\n      - run: cargo build --offline\n      - run: ./target/debug/tiny\n      - run: python3 -c 'import tempfile; print(\"python ok\", tempfile.mkdtemp())'\n",
        "pipeline",
    );
    remote.push();
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let log = log_of(&server, "demo/1");
    assert!(out.status.success(), "the cargo job failed:\n{log}");
    assert!(log.contains("tiny says hi"), "{log}");
    assert!(log.contains("python ok"), "{log}");
}

/// A confined step still ends when its job is canceled (signals from the
/// server reach into the sandbox, only not the other way).
#[test]
fn a_confined_step_is_still_stopped_by_a_cancel() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let remote = Remote::new(
        tmp.path(),
        "jobs:\n  sleepy:\n    steps:\n      - run: echo sleeping; sleep 300\n",
    );
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_until("the step to run", Duration::from_secs(20), || {
        log_of(&server, "demo/1").contains("sleeping")
    });
    let cancel = server.cli(&["cancel", "demo/1"]);
    assert!(
        cancel.status.success(),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    wait_for_end(&server, "demo/1", Duration::from_secs(20));
    // The worker notices the cancel at its next lease renewal (every two
    // seconds); on two loaded cores the kill has once taken over 10 s.
    server.wait_until("the step to be killed", Duration::from_secs(30), || {
        let left = Command::new("pgrep")
            .args(["-f", "sleep 300"])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&left.stdout).trim().is_empty()
    });
}

/// A job's registry token (what its engine pushes with) opens only its own
/// project's image, and nothing once the job ended. The test claims the job as
/// an agent would, which is how the token leaves the server.
#[test]
fn a_job_token_reaches_only_its_project_and_ends_with_its_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, agent) = image_job_queued(tmp.path());
    let (job, password) = claim(&server, &agent);
    let upload = |image: &str| start_upload(&server, &password, image);

    let (own, body) = upload("ci/demo");
    assert_eq!(own, 202, "the job's own image: {body}");
    let (other, body) = upload("ci/other-project");
    assert!(
        (401..=403).contains(&other),
        "another project's image took the job token: {other} {body}"
    );
    eprintln!("job token: own project {own}, other project {other}");

    let (code, body) = agent_post(
        &server,
        &agent,
        &format!("jobs/{job}/finish"),
        r#"{"worker":"fake","status":"failed","exit_code":1,"reason":"ended by the test"}"#,
    );
    assert!((200..300).contains(&code), "finish: {code} {body}");
    let (after, body) = upload("ci/demo");
    eprintln!("job token after its job ended: {after} {body}");
    assert_eq!(after, 401, "the token outlived its job: {body}");
}

/// A shared object whose constructor appends to `$MARKER` and to
/// `./preloaded` and `$HOME/preloaded` (these show it was loaded where it is
/// allowed: in the step or the release's process, inside the sandbox).
const EVIL_SO: &str = r#"#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void evil(void) {
  const char *marker = getenv("MARKER");
  FILE *f = marker ? fopen(marker, "a") : NULL;
  if (f) { fputs("loaded unconfined\n", f); fclose(f); }
  f = fopen("preloaded", "a");
  if (f) { fputs("loaded\n", f); fclose(f); }
  char path[4096];
  const char *home = getenv("HOME");
  snprintf(path, sizeof path, "%s/preloaded", home ? home : "/nonexistent");
  f = fopen(path, "a");
  if (f) { fputs("loaded\n", f); fclose(f); }
}
"#;

/// `LD_PRELOAD` (and its kin) in a job's variables reaches only the step's
/// own shell, inside the sandbox: not the launcher, not a shell that runs
/// before the sandbox holds, which would write where the job cannot.
#[test]
fn a_jobs_loader_variables_reach_no_code_before_the_sandbox() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    commit_file(&remote.work, "evil.c", EVIL_SO, "evil");
    let marker = data.join("marker");
    let pipeline = format!(
        "env:\n  LD_PRELOAD: ./evil.so\n  MARKER: \"{}\"\njobs:\n  preload:\n    steps:\n      \
         - run: gcc -shared -fPIC -o evil.so evil.c\n      \
         - run: echo second step ran\n      \
         - run: test -s preloaded && echo PRELOAD-IN-STEP\n",
        marker.display()
    );
    remote.commit(".slipway.yml", &pipeline, "pipeline");
    remote.push();
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let log = log_of(&server, "demo/1");
    let leaked = std::fs::read_to_string(&marker).unwrap_or_default();
    eprintln!("marker in the data directory: {leaked:?}");
    assert!(
        leaked.is_empty(),
        "a job's LD_PRELOAD ran outside the sandbox:\n{leaked}\n{log}"
    );
    assert!(out.status.success(), "the job failed:\n{log}");
    assert!(log.contains("second step ran"), "{log}");
    assert!(log.contains("PRELOAD-IN-STEP"), "{log}");
}

/// Whether a process can connect to the Unix socket at `$1` (python: the
/// same on every machine).
const CONNECT: &str = r#"python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$0""#;

/// Sockets of the server's session and the host's services: a job's own
/// `DOCKER_HOST` does not choose which engine socket is hidden; a socket in
/// a user's runtime directory, tmux's, PostgreSQL's are out of reach; the
/// server's `SSH_AUTH_SOCK` is not handed on; the step has no controlling
/// terminal and a session of its own.
#[test]
fn a_job_reaches_no_socket_of_the_servers_session_and_no_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let tag = format!("slipway-test-{}", std::process::id());
    let engine = tmp.path().join("engine.sock");
    let runtime = Path::new("/run/user").join(&tag);
    let tmux = Path::new("/tmp").join(format!("tmux-{tag}"));
    let agent = Path::new("/tmp").join(format!("ssh-{tag}")).join("agent.1");
    let listeners: Vec<std::os::unix::net::UnixListener> = [
        engine.clone(),
        runtime.join("bus"),
        tmux.join("default"),
        agent.clone(),
    ]
    .iter()
    .map(|path| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::os::unix::net::UnixListener::bind(path).expect("listen")
    })
    .collect();
    // The server may ask its engine something: answered by a closed connection.
    let engine_listener = listeners[0].try_clone().expect("clone");
    std::thread::spawn(move || {
        for stream in engine_listener.incoming() {
            drop(stream)
        }
    });
    let docker_host = format!("unix://{}", engine.display());
    let server = ServerProcess::start_with_env(
        &data,
        "127.0.0.1:0",
        &["--workers", "1"],
        &[
            ("DOCKER_HOST", &docker_host),
            ("SSH_AUTH_SOCK", &agent.display().to_string()),
        ],
    );
    let remote = Remote::new(tmp.path(), "jobs:\n  noop:\n    steps: [true]\n");
    let mut attack = String::from(
        "probe() { n=$1; shift; if sh -c \"$@\" >/dev/null 2>&1; then echo \"PROBE $n LEAKED\"; else echo \"PROBE $n refused\"; fi; }\n",
    );
    for (name, path) in [
        ("engine-named-by-server", &engine),
        ("user-runtime-dir", &runtime.join("bus")),
        ("tmux-socket", &tmux.join("default")),
        ("ssh-agent-socket", &agent),
    ] {
        attack += &format!("probe {name} '{CONNECT}' '{}'\n", path.display());
    }
    if Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        attack += &format!("probe postgresql '{CONNECT}' /var/run/postgresql/.s.PGSQL.5432\n");
    }
    attack += r#"probe ssh-auth-sock 'test -n "$SSH_AUTH_SOCK"'
probe controlling-terminal ': </dev/tty'
probe servers-session 'test "$(cut -d" " -f6 /proc/self/stat)" = "$(cut -d" " -f6 /proc/$0/stat)"' SERVER_PID
echo "PROBE done"
"#;
    let attack = attack.replace("SERVER_PID", &server.child.id().to_string());
    let pipeline = "env:\n  DOCKER_HOST: unix:///nowhere.sock\njobs:\n  attack:\n    steps:\n      - run: sh attack.sh\n";
    let found = run_attack(&server, &remote, pipeline, &attack);
    let _ = std::fs::remove_dir_all(&runtime);
    let _ = std::fs::remove_dir_all(&tmux);
    let _ = std::fs::remove_dir_all(agent.parent().expect("parent"));
    assert_server_works(&server, &data);
    assert_all_refused(&found);
}

/// A deployment's configuration variables reach the release's process only
/// inside its sandbox, as a job's do its steps: `LD_PRELOAD` in `config`
/// loads nothing into the launcher.
#[test]
fn a_deployments_loader_variables_reach_no_code_before_the_sandbox() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let source = tmp.path().join("evil.c");
    std::fs::write(&source, EVIL_SO).expect("write");
    let evil = tmp.path().join("evil.so");
    let built = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&evil)
        .arg(&source)
        .status()
        .expect("gcc");
    assert!(built.success(), "gcc cannot build the shared object");
    let marker = data.join("marker");
    let pipeline = SERVED.replace(
        "    health: { http: /index.html }\n",
        &format!(
            "    health: {{ http: /index.html }}\n    config:\n      LD_PRELOAD: \"{}\"\n      MARKER: \"{}\"\n",
            evil.display(),
            marker.display()
        ),
    );
    assert_ne!(
        pipeline, SERVED,
        "the pipeline has no environment to configure"
    );
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let out = server.cli(&["trigger", "demo", "--wait"]);
    assert!(out.status.success(), "{}", log_of(&server, "demo/1"));
    let head = remote.head();
    server.wait_until("dev to run the release", Duration::from_secs(30), || {
        live_commit(&server, "dev") == head
    });
    let leaked = std::fs::read_to_string(&marker).unwrap_or_default();
    eprintln!("marker in the data directory: {leaked:?}");
    assert!(
        leaked.is_empty(),
        "a deployment's LD_PRELOAD ran outside the sandbox:\n{leaked}"
    );
    let loaded = Command::new("find")
        .arg(&data)
        .args(["-name", "preloaded"])
        .output()
        .expect("find");
    assert!(
        !loaded.stdout.is_empty(),
        "the release's process did not get its LD_PRELOAD at all"
    );
}
