//! The unsandboxed side of a job never follows the job's paths out of its
//! workspace, and a job's processes end with it (issue 12, review items B5
//! and B4).
//!
//! After the steps, the server (or agent) itself reads what the job left:
//! reports, cache-key inputs, artifacts and cache paths. A job that leaves a
//! symbolic link to the data directory's `admin.token` or `secret.key`, a
//! symlinked directory, a FIFO or `/dev/zero` there must not get their
//! contents into an artifact, a cache entry or its log, nor hang its worker.
//! And whatever a step starts (even `setsid` or a double fork) is gone when
//! the job ends, and after a `kill -9` and a restart of the server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::support::{log_of, unique_tag, wait_for_end};
use crate::common::server::{Remote, ServerProcess, commit_file};

/// A server with one worker, and a remote whose pipeline is replaced per test.
pub(super) fn setup(tmp: &Path) -> (ServerProcess, PathBuf, Remote) {
    let data = tmp.join("data");
    let remote = Remote::new(tmp, "jobs:\n  noop:\n    steps: [true]\n");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    (server, data, remote)
}

/// Pushes `pipeline`, runs it to its end (bounded: a hung worker fails the
/// test) and returns the run's state and log.
pub(super) fn run(server: &ServerProcess, remote: &Remote, pipeline: &str) -> (String, String) {
    remote.commit(".slipway.yml", pipeline, "pipeline");
    remote.push();
    server.add_project(remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    let state = wait_for_end(server, "demo/1", Duration::from_secs(60));
    let log = log_of(server, "demo/1");
    eprintln!("run state {state}; log:\n{log}");
    (state, log)
}

/// The data directory's secrets, as a job would want them.
fn secrets(data: &Path) -> Vec<(String, Vec<u8>)> {
    ["admin.token", "secret.key"]
        .iter()
        .map(|name| {
            let content = std::fs::read(data.join(name)).expect("secret file");
            let trimmed = String::from_utf8_lossy(&content).trim().as_bytes().to_vec();
            (name.to_string(), trimmed)
        })
        .collect()
}

/// Regular files below `dir` (links not followed).
fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => files.extend(regular_files(&path)),
            Ok(m) if m.is_file() => files.push(path),
            _ => {}
        }
    }
    files
}

/// Regular files below `dir` that hold one of the secrets.
fn holders(dir: &Path, secrets: &[(String, Vec<u8>)]) -> Vec<String> {
    regular_files(dir)
        .into_iter()
        .filter_map(|path| {
            let content = std::fs::read(&path).ok()?;
            let (name, _) = secrets.iter().find(|(_, s)| {
                !s.is_empty() && content.windows(s.len()).any(|w| w == s.as_slice())
            })?;
            Some(format!("{} holds {name}", path.display()))
        })
        .collect()
}

/// Regular files a job's products may be in: stored artifacts and caches.
fn stored_products(data: &Path) -> Vec<PathBuf> {
    vec![data.join("runs"), data.join("caches")]
}

fn assert_nothing_holds_secrets(data: &Path, log: &str) {
    let secrets = secrets(data);
    let leaked: Vec<String> = stored_products(data)
        .iter()
        .flat_map(|dir| holders(dir, &secrets))
        .collect();
    assert!(leaked.is_empty(), "the job's products hold: {leaked:?}");
    for (name, value) in &secrets {
        assert!(
            !log.contains(String::from_utf8_lossy(value).as_ref()),
            "the log shows {name}"
        );
    }
}

/// A step that leaves links to the data directory's secrets and to the data
/// directory itself, at the top and inside a directory.
const PLANT_LINKS: &str = r#"      - run: |
          D=$(dirname "$(dirname "$SLIPWAY_WORKSPACE")")
          ln -s "$D/admin.token" token
          ln -s "$D" data
          mkdir -p out && echo plain > out/plain
          ln -s "$D/secret.key" out/key
          ln -s "$D" out/data
"#;

#[test]
fn artifacts_never_hold_what_a_symlink_points_at() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    let pipeline = format!(
        "jobs:\n  make:\n    steps:\n{PLANT_LINKS}    artifacts: [token, data, out, data/admin.token, \"out/data/*\"]\n  \
         read:\n    needs: [make]\n    steps:\n      - run: cat token data/admin.token out/key out/data/secret.key 2>&1 || true\n"
    );
    let (_, log) = run(&server, &remote, &pipeline);
    assert!(log.contains("artifacts: kept"), "the artifacts were kept");
    assert_nothing_holds_secrets(&data, &log);
}

#[test]
fn caches_never_hold_what_a_symlink_points_at() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    let pipeline = format!(
        "jobs:\n  make:\n    steps:\n{PLANT_LINKS}    cache:\n      key: links\n      paths: [token, data, out, data/admin.token, \"out/data/*\"]\n"
    );
    let (_, log) = run(&server, &remote, &pipeline);
    assert!(log.contains("cache: saved `links`"), "the cache was saved");
    assert_nothing_holds_secrets(&data, &log);
}

#[test]
fn a_report_glob_through_a_symlink_reads_nothing_outside_the_workspace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    let pipeline = "jobs:\n  gate:\n    steps:\n      - run: |\n          D=$(dirname \"$(dirname \"$SLIPWAY_WORKSPACE\")\")\n          ln -s \"$D\" reports\n          ln -s \"$D/admin.token\" issues.json\n    reports:\n      junit: reports/admin.token\n      issues: issues.json\n";
    let (state, log) = run(&server, &remote, pipeline);
    assert_eq!(state, "failed", "a report that is not there fails the gate");
    assert!(
        log.contains("symbolic link"),
        "the gate says why it read nothing"
    );
    assert_nothing_holds_secrets(&data, &log);
}

#[test]
fn a_hash_over_links_to_a_fifo_or_dev_zero_does_not_hang_the_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    let fifo = tmp.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    // Links come with the sources: git keeps them, and the key is rendered
    // before any step runs.
    for (link, target) in [
        ("lock/fifo", fifo.clone()),
        ("lock/zero", PathBuf::from("/dev/zero")),
        ("lock/token", data.join("admin.token")),
    ] {
        let path = remote.work.join(link);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
    }
    commit_file(&remote.work, "lock/plain", "plain", "links");
    let pipeline = "jobs:\n  keyed:\n    steps: [true]\n    cache:\n      key: k-{{ hash \"lock\" }}\n      paths: [lock]\n";
    let started = Instant::now();
    let (state, log) = run(&server, &remote, pipeline);
    eprintln!("ended in {:?}", started.elapsed());
    assert_eq!(state, "succeeded", "links are hashed as links");
    assert_nothing_holds_secrets(&data, &log);
}

#[test]
fn a_fifo_among_artifacts_or_cache_paths_is_refused_not_opened() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _data, remote) = setup(tmp.path());
    let pipeline = "jobs:\n  fifo:\n    steps:\n      - run: mkdir out && mkfifo out/pipe && echo x > out/file\n    artifacts: [out]\n  cached:\n    steps:\n      - run: mkdir out && mkfifo out/pipe\n    cache:\n      key: fifo\n      paths: [out]\n";
    let started = Instant::now();
    let (state, log) = run(&server, &remote, pipeline);
    eprintln!("ended in {:?}", started.elapsed());
    assert_eq!(state, "failed");
    let status = server.run_status("demo/1");
    for job in ["fifo", "cached"] {
        let reason = crate::common::job(&status, job)["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            reason.contains("out/pipe") && reason.contains("FIFO"),
            "{job}: {reason}\n{log}"
        );
    }
}

/// The processes whose command line holds `tag`.
fn tagged(tag: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(tag.len()).any(|w| w == tag.as_bytes()))
        })
        .collect()
}

/// Kills what a failed test leaves behind (on the code before the fix).
struct KillTagged(String);

impl Drop for KillTagged {
    fn drop(&mut self) {
        for pid in tagged(&self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Waits (bounded) until no process carries `tag`; the ones left otherwise.
fn gone(tag: &str, limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = tagged(tag);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A step that starts a `setsid` process and a double-forked daemon, each
/// with `$TAG` in its command line, and waits until both run. The script's
/// text names `$TAG`, never its value, so only they carry it. With `hold`, the
/// step then stays (once per project: a re-run after a restart does not).
fn escaping_pipeline(tag: &str, hold: bool) -> String {
    let hold = if hold {
        "\n          touch \"$HOME/held-$TAG\"\n          sleep 1000"
    } else {
        ""
    };
    format!(
        r#"env:
  TAG: {tag}
jobs:
  escape:
    steps:
      - run: |
          test -e "$HOME/held-$TAG" && exit 0
          setsid sh -c "sleep 1000; : $TAG-setsid" </dev/null >/dev/null 2>&1 &
          (setsid sh -c "sleep 1000; : $TAG-daemon" </dev/null >/dev/null 2>&1 &)
          for i in $(seq 100); do
            n=$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' | grep -o "$TAG-[a-z][a-z]*" | sort -u | wc -l || true)
            test "$n" = 2 && break
            sleep 0.05
          done
          echo "ESCAPED $n"{hold}
"#
    )
}

#[test]
fn a_jobs_processes_end_with_it_even_after_setsid_and_a_double_fork() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _data, remote) = setup(tmp.path());
    let tag = unique_tag("escape");
    let _cleanup = KillTagged(tag.clone());
    let (state, log) = run(&server, &remote, &escaping_pipeline(&tag, false));
    assert_eq!(state, "succeeded");
    assert!(log.contains("ESCAPED 2"), "both processes started");
    let left = gone(&tag, Duration::from_secs(5));
    assert!(left.is_empty(), "the job left processes {left:?} running");
}

#[test]
fn a_jobs_processes_end_after_a_kill_9_and_restart_of_the_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let tag = unique_tag("orphan");
    let _cleanup = KillTagged(tag.clone());
    let remote = Remote::new(tmp.path(), &escaping_pipeline(&tag, true));
    let mut first = ServerProcess::start(&data, &["--workers", "1"]);
    first.add_project(&remote, &[]);
    assert!(first.cli(&["trigger", "demo"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while tagged(&tag).len() != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log_of(&first, "demo/1");
    assert_eq!(
        tagged(&tag).len(),
        2,
        "two processes carry the tag; the job's log:\n{log}"
    );
    first.kill9();
    let _second = ServerProcess::start(&data, &["--workers", "1"]);
    let left = gone(&tag, Duration::from_secs(10));
    assert!(
        left.is_empty(),
        "processes {left:?} of the killed server's job still run after the restart"
    );
}

/// The failure reason of `job` in run `demo/1`.
fn reason_of(server: &ServerProcess, job: &str) -> String {
    let status = server.run_status("demo/1");
    crate::common::job(&status, job)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Asserts nothing was written through a link into the data directory, and
/// prints the route's outcome for the record.
fn assert_not_escaped(data: &Path, route: &str) {
    let escaped = data.join("escaped");
    eprintln!(
        "{route}: {} exists: {}",
        escaped.display(),
        escaped.exists()
    );
    assert!(
        !escaped.exists(),
        "{route}: the server wrote {} through a link",
        escaped.display()
    );
}

/// Item 1, route 1 (second review): job `link`'s artifact `out` is a link to
/// the data directory, job `write`'s artifact is a real `out/escaped`; laying
/// both into `read` must not write through the first.
#[test]
fn laying_artifacts_never_writes_through_an_artifact_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    let pipeline = format!(
        "jobs:\n  link:\n    steps:\n      - ln -s {data} out\n    artifacts: [out]\n  \
         write:\n    steps:\n      - mkdir out && echo owned > out/escaped\n    artifacts: [out]\n  \
         read:\n    needs: [link, write]\n    steps: [true]\n",
        data = data.display()
    );
    let (state, _log) = run(&server, &remote, &pipeline);
    let reason = reason_of(&server, "read");
    eprintln!("route 1: run {state}; read: {reason}");
    assert_not_escaped(&data, "artifacts");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("`out`") && reason.contains("symbolic link"),
        "the job says which link: {reason}"
    );
}

/// Item 1, route 2: a link committed in the repository, and a cache entry
/// with a real directory of that name restored over it.
#[test]
fn restoring_a_cache_never_writes_through_a_committed_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    std::os::unix::fs::symlink(&data, remote.work.join("out")).expect("symlink");
    commit_file(&remote.work, "README", "links", "a link to the data dir");
    let pipeline = "jobs:\n  seed:\n    steps:\n      - rm out && mkdir out && echo owned > out/escaped\n    cache:\n      key: over\n      paths: [out]\n  \
         restore:\n    needs: [seed]\n    steps: [true]\n    cache:\n      key: over\n      paths: [out]\n";
    let (state, _log) = run(&server, &remote, pipeline);
    let reason = reason_of(&server, "restore");
    eprintln!("route 2: run {state}; restore: {reason}");
    assert_not_escaped(&data, "cache");
    assert_eq!(state, "failed");
    assert!(
        reason.contains("`out`") && reason.contains("symbolic link"),
        "the job says which link: {reason}"
    );
}

/// Item 1, route 3: two jobs' artifacts merged into one release tree, one a
/// link to the data directory, the other a real directory of that name. The
/// release merges jobs in directory order; on ext4 here `plant` comes first.
#[test]
fn staging_a_release_never_writes_through_an_artifact_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    let pipeline = format!(
        "jobs:\n  plant:\n    steps:\n      - ln -s {data} out\n    artifacts: [out]\n  \
         copy:\n    needs: [plant]\n    steps:\n      - rm -f out && mkdir out && echo owned > out/escaped\n    artifacts: [out]\n\
         environments:\n  dev:\n    branch: main\n    target: {{ local: {{ command: 'true' }} }}\n",
        data = data.display()
    );
    let (state, _log) = run(&server, &remote, &pipeline);
    assert_eq!(state, "succeeded", "both jobs ran");
    // The release is staged after the run. Before the fix the write lands
    // at once; after it the staging is refused and no release is made, so
    // this waits (bounded) for either a release or the write.
    let made = data.join("releases").join("1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !made.exists() && !data.join("escaped").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let audit = super::support::audit(&server);
    eprintln!("route 3: release tree {}; audit {audit}", made.exists());
    assert_not_escaped(&data, "release");
}
