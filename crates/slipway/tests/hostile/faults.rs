//! Faults heal without a restart (issue 12, "What must hold" 6): a full disk
//! answers 507 saying what is full, leaves no partial upload, and once space
//! is back every push, run and page works on the same server process; a
//! server restarted at once after `kill -9` kills the old steps before their
//! jobs run again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::registry_auth::{Answer, basic, curl};
use super::support::{unique_tag, wait_for_end};
use crate::common::files_under;
use crate::common::server::{AgentProcess, Remote, ServerProcess};

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why not (not root, no mount permission) and gives none.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here ({}); the fault test needs root",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: no `mount` command ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system under `dir` to the last byte; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0x5a_u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    // Whatever a partial block left, down to single bytes.
    while file.write_all(&[0]).is_ok() {}
    path
}

fn monolithic_push(server: &ServerProcess, name: &str, content: &Path) -> Answer {
    use sha2::Digest as _;
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(content).expect("read")))
    );
    curl(
        "POST",
        &format!("{}/v2/{name}/blobs/uploads/?digest={digest}", server.url),
        Some(&basic(server)),
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", content.display()),
        ],
    )
}

fn trigger(server: &ServerProcess) -> Answer {
    curl(
        "POST",
        &format!("{}/api/v1/projects/demo/trigger", server.url),
        Some(&format!("Bearer {}", server.token)),
        &["-H", "Content-Type: application/json", "-d", "{}"],
    )
}

/// `demo/N` of a trigger's answer.
fn run_of(trigger: &Answer) -> String {
    let run: serde_json::Value = serde_json::from_str(&trigger.body).expect("run JSON");
    format!("demo/{}", run["number"].as_i64().expect("run number"))
}

/// Every page and probe a user would try, as one status line each.
fn pages(server: &ServerProcess) -> Vec<(String, u16)> {
    let bearer = format!("Bearer {}", server.token);
    [
        "/readyz",
        "/ui/login",
        "/metrics",
        "/api/v1/projects",
        "/api/v1/projects/demo/runs",
        "/api/v1/projects/demo/runs/1",
        "/api/v1/projects/demo/runs/1/log",
        "/api/v1/repositories",
    ]
    .iter()
    .map(|path| {
        let answer = curl("GET", &format!("{}{path}", server.url), Some(&bearer), &[]);
        (path.to_string(), answer.status)
    })
    .collect()
}

#[test]
fn a_full_disk_answers_507_removes_the_partial_upload_and_heals_without_a_restart() {
    let Some(tmpfs) = Tmpfs::mount("20m") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), "jobs:\n  build:\n    steps: [echo built]\n");
    let data = tmpfs.path().join("data");
    // Jobs run on an agent started later: a job waits, queued, for the disk to fill.
    let server = ServerProcess::start(&data, &["--workers", "0"]);
    server.add_project(&remote, &[]);
    assert!(
        server
            .cli(&["repo", "add", "ci", "--kind", "oci"])
            .status
            .success()
    );

    // A push larger than the disk: 507, saying what is full, and nothing left.
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![7u8; 30 * 1024 * 1024]).expect("write");
    let refused = monolithic_push(&server, "ci/app", &big);
    assert_eq!(refused.status, 507, "{}", refused.body);
    assert!(refused.body.contains("storage is full"), "{}", refused.body);
    let uploads = data.join("registry/uploads");
    assert_eq!(files_under(&uploads), Vec::<PathBuf>::new());

    // The disk full from outside: pushes, runs, claims all fail, and clearly.
    let queued = trigger(&server);
    assert!(matches!(queued.status, 200 | 201), "{}", queued.body);
    let filler = fill(tmpfs.path());
    let small = tmp.path().join("small");
    std::fs::write(&small, vec![9u8; 256 * 1024]).expect("write");
    let refused = monolithic_push(&server, "ci/app", &small);
    assert_eq!(refused.status, 507, "{}", refused.body);
    let refused = trigger(&server);
    assert_eq!(refused.status, 507, "{}", refused.body);
    assert!(refused.body.contains("storage is full"), "{}", refused.body);
    // Claiming the queued job writes (and commits) a lease: the commit fails.
    let claim = curl(
        "POST",
        &format!("{}/api/v1/agent/claim", server.url),
        Some(&format!("Bearer {}", server.token)),
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"worker":"probe","labels":[],"wait_ms":0}"#,
        ],
    );
    assert_eq!(claim.status, 507, "{}", claim.body);
    assert_eq!(files_under(&uploads), Vec::<PathBuf>::new());

    // Space back: the same process pushes, runs and serves every page.
    std::fs::remove_file(&filler).expect("free the space");
    let pushed = monolithic_push(&server, "ci/app", &small);
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let _agent = AgentProcess::start(&server, "healer", &tmp.path().join("agent"));
    assert_eq!(
        wait_for_end(&server, &run_of(&queued), Duration::from_secs(20)),
        "succeeded"
    );
    // More runs than the pool has connections: none may meet a broken one.
    for _ in 0..5 {
        let accepted = trigger(&server);
        assert!(matches!(accepted.status, 200 | 201), "{}", accepted.body);
        let run = run_of(&accepted);
        assert_eq!(
            wait_for_end(&server, &run, Duration::from_secs(20)),
            "succeeded",
            "run {run}"
        );
    }
    for (path, status) in pages(&server) {
        assert_eq!(status, 200, "GET {path}");
    }
    assert_eq!(files_under(&uploads), Vec::<PathBuf>::new());
}

/// A step that says it started, then appends one line when it completes.
/// It writes under its HOME: confined host steps may write only there and in
/// their workspace (which a restart removes with the orphan).
fn appending_pipeline(marks: &str) -> String {
    format!(
        "jobs:\n  append:\n    steps:\n      - run: |\n          mkdir -p $HOME/{marks}\n          echo $$ > $HOME/{marks}/started-$$\n          sleep 2\n          echo line >> $HOME/{marks}/lines\n"
    )
}

/// The step's marks directory: under the project's job home in the data
/// directory, or (unconfined) under the server's own HOME.
fn marks_dir(data: &Path, marks: &str) -> Option<PathBuf> {
    let mut places = files_under(data);
    if let Ok(home) = std::env::var("HOME") {
        places.extend(files_under(&Path::new(&home).join(marks)));
    }
    places
        .into_iter()
        .find(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("started-"))
                && f.parent().is_some_and(|d| d.ends_with(marks))
        })
        .and_then(|f| f.parent().map(Path::to_path_buf))
}

/// The shell pid of the step's first start (its `started-PID` mark).
fn started_pid(marks: &Path) -> u32 {
    std::fs::read_dir(marks)
        .expect("marks")
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("started-")
                .and_then(|pid| pid.parse().ok())
        })
        .expect("a started mark")
}

/// Whether `pid` runs (exists and is not a zombie waiting for its reaper).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_server_restarted_at_once_after_kill_9_kills_the_old_step_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tag = unique_tag("kill9");
    let remote = Remote::new(tmp.path(), &appending_pipeline(&tag));
    let data = tmp.path().join("data");
    let flags = ["--workers", "1", "--lease-seconds", "2"];
    let mut first = ServerProcess::start(&data, &flags);
    first.add_project(&remote, &[]);
    assert!(first.cli(&["trigger", "demo"]).status.success());
    let mut marks = None;
    first.wait_until("the step to start", Duration::from_secs(30), || {
        marks = marks_dir(&data, &tag);
        marks.is_some()
    });
    let marks = marks.expect("marks");
    let step = started_pid(&marks);
    // SIGKILL and start again at once. The old process is reaped only after
    // the new server has dealt with its step, as a slow supervisor would: a
    // killed server stays in /proc (exiting, then a zombie) until reaped.
    let pid = i32::try_from(first.child.id()).expect("pid");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
    let second = ServerProcess::start(&data, &flags);
    let killed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !running(step)
    });
    let _ = first.child.wait();
    let out = second.cli(&["logs", "-f", "demo/1"]);
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let status = second.run_status("demo/1");
    assert_eq!(status["run"]["state"], "succeeded", "{status}");
    // The first step would have appended two seconds after it started; the
    // re-run waited out the lease and took two seconds itself, so that is past.
    let lines = std::fs::read_to_string(marks.join("lines")).unwrap_or_default();
    if marks.starts_with(std::env::var("HOME").unwrap_or_default()) {
        let _ = std::fs::remove_dir_all(&marks);
    }
    assert!(killed, "the old step still ran 5 s after the restart");
    assert_eq!(
        lines.lines().count(),
        1,
        "the step's line appears once, for the one completed run of the job: {lines:?}"
    );
    assert_eq!(status["jobs"][0]["attempt"], 2, "{status}");
}
