//! A real `slipway server` and real `slipway agent` processes for tests, and
//! the CLI pointed at them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The password of every user [`ServerProcess::add_user`] makes.
pub const PASSWORD: &str = "long enough password";

/// `tests/fixtures/git-http-auth.py`: git's smart HTTP over the repositories
/// in a folder, answering only to one user and password; killed when dropped.
pub struct GitHttpAuth {
    child: Child,
    pub port: u16,
}

impl GitHttpAuth {
    /// Starts the server on `dir` and waits for the port it prints once bound.
    pub fn start(dir: &Path, user: &str, password: &str) -> GitHttpAuth {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/git-http-auth.py"
        );
        let mut child = Command::new("python3")
            .arg(fixture)
            .arg(dir)
            .args([user, password])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the git server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.strip_prefix("port ").and_then(|p| p.parse().ok()))
            .expect("git-http-auth.py prints `port N` once it listens");
        GitHttpAuth { child, port }
    }
}

impl Drop for GitHttpAuth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server process on a free port, killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts a server and waits for its "listening on" line (the port is bound).
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_on(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts a server on a given address (a restart on the port clients know).
    pub fn start_on(data_dir: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(data_dir, listen, extra, &[])
    }

    /// Starts a server with `env` added to the test's environment (the
    /// server's own session: an agent socket, a Docker host).
    pub fn start_with_env(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["server", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
            .expect("the server says where it listens");
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let token = std::fs::read_to_string(data_dir.join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string();
        ServerProcess {
            child,
            url,
            token,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// `slipway ARGS` against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_cmd(args).output().expect("slipway runs")
    }

    pub fn cli_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.args(args)
            .env("SLIPWAY_URL", &self.url)
            .env("SLIPWAY_TOKEN", &self.token);
        cmd
    }

    /// `slipway ARGS --json` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// `GET PATH` of the API with the admin token, parsed.
    pub fn json_api(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-H",
                &format!("Authorization: Bearer {}", self.token),
            ])
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl");
        assert!(out.status.success(), "GET {path} failed");
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// Waits (bounded) until `check` holds, looking again every 50 ms.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < limit,
                "gave up waiting for {what} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A run's state and jobs.
    /// `slipway run-status RUN --json` parsed; its exit code (1 failed,
    /// 2 canceled) is the state the JSON also says, so any of 0, 1, 2 is fine.
    pub fn run_status(&self, run: &str) -> serde_json::Value {
        let out = self.cli(&["run-status", run, "--json"]);
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "run-status {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// `slipway project add demo --git REMOTE EXTRA…`; returns the webhook secret it printed.
    pub fn add_project(&self, remote: &Remote, extra: &[&str]) -> String {
        let mut args = vec![
            "project",
            "add",
            "demo",
            "--git",
            remote.bare.to_str().expect("utf8"),
        ];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("webhook secret: "))
            .and_then(|l| l.split_whitespace().next())
            .expect("a webhook secret")
            .to_string()
    }

    /// `slipway ARGS` with `input` on its standard input.
    pub fn cli_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write as _;
        let mut child = self
            .cli_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("slipway runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("slipway ends")
    }

    /// `echo -n VALUE | slipway secret set PROJECT NAME`.
    pub fn set_secret(&self, project: &str, name: &str, value: &str) {
        let out = self.cli_with_input(&["secret", "set", project, name], value);
        assert!(out.status.success(), "secret set {name}");
    }

    /// `slipway user add NAME --role ROLE --email EMAIL` with [`PASSWORD`].
    pub fn add_user(&self, name: &str, role: &str, email: &str) -> Output {
        self.cli_with_input(
            &["user", "add", name, "--role", role, "--email", email],
            PASSWORD,
        )
    }

    /// A GitHub push delivery of `body` (see [`github_push_body`]) to `/hooks/PROJECT`, signed with
    /// `secret` when given; returns (HTTP status, body).
    pub fn github_push(
        &self,
        project: &str,
        secret: Option<&str>,
        delivery: &str,
        body: &serde_json::Value,
    ) -> (u16, String) {
        use hmac::Mac as _;
        let body = body.to_string();
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", "X-GitHub-Event: push"])
            .args(["-H", &format!("X-GitHub-Delivery: {delivery}")]);
        if let Some(secret) = secret {
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
            mac.update(body.as_bytes());
            let signature = hex::encode(mac.finalize().into_bytes());
            cmd.args(["-H", &format!("X-Hub-Signature-256: sha256={signature}")]);
        }
        let out = cmd
            .args(["--data-binary", &body])
            .arg(format!("{}/hooks/{project}", self.url))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.parse().expect("status"), body.to_string())
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        // A server killed outright leaves its `local` environments running
        // (the next start stops them by their pid files): stop them here.
        let deploy = super::files_under(&self.data_dir.join("deploy"));
        for pid_file in deploy
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pid"))
        {
            let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// The body of a GitHub push delivery of `commit` on main.
pub fn github_push_body(commit: &str) -> serde_json::Value {
    serde_json::json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": commit, "deleted": false,
        "repository": { "clone_url": "ignored" }, "commits": [], "head_commit": { "id": commit }
    })
}

/// An agent process, killed when dropped.
pub struct AgentProcess {
    pub child: Child,
}

impl AgentProcess {
    pub fn start(server: &ServerProcess, name: &str, work_dir: &Path) -> AgentProcess {
        AgentProcess::start_with(server, name, work_dir, &[])
    }

    /// An agent with extra options (`--job-writable DIR`, …).
    pub fn start_with(
        server: &ServerProcess,
        name: &str,
        work_dir: &Path,
        extra: &[&str],
    ) -> AgentProcess {
        let mut child = server
            .cli_cmd(&["agent", "--name", name, "--work-dir"])
            .arg(work_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agent starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("ready"));
        assert!(ready, "agent {name} did not start");
        std::thread::spawn(move || for _ in lines.by_ref() {});
        AgentProcess { child }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A bare "remote" repository and a work clone that pushes to it.
pub struct Remote {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Remote {
    pub fn new(root: &Path, pipeline: &str) -> Remote {
        let work = root.join("work");
        let bare = root.join("remote.git");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(
            root,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().expect("utf8"),
            ],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("utf8")],
        );
        let remote = Remote { bare, work };
        remote.commit(".slipway.yml", pipeline, "pipeline");
        remote.push();
        remote
    }

    /// Commits a file; returns the commit id.
    pub fn commit(&self, path: &str, content: &str, message: &str) -> String {
        commit_file(&self.work, path, content, message);
        self.head()
    }

    /// The work clone's current commit id.
    pub fn head(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&self.work)
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn push(&self) {
        git(&self.work, &["push", "-q", "origin", "main"]);
    }
}

/// Writes a file in a work tree and commits everything there.
pub fn commit_file(dir: &Path, path: &str, content: &str, message: &str) {
    std::fs::write(dir.join(path), content).expect("write");
    commit_as(dir, ("Dev", "dev@example.com"), message, &[]);
}

/// Commits everything in a work tree with `committer` as (name, email);
/// `extra` goes to `git commit` (an `--author`, say).
pub fn commit_as(dir: &Path, committer: (&str, &str), message: &str, extra: &[&str]) {
    git(dir, &["add", "-A"]);
    let name = format!("user.name={}", committer.0);
    let email = format!("user.email={}", committer.1);
    let mut args = vec!["-c", &name, "-c", &email, "commit", "-qm", message];
    args.extend_from_slice(extra);
    git(dir, &args);
}

pub fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}
