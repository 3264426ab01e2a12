//! `slipway run` end to end: real git repositories, real processes, the real
//! Docker engine.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{BUSYBOX, Repo, containers_of, job, require_docker, text};

#[test]
fn diamond_dag_passes_artifacts_along() {
    let repo = Repo::new(
        r#"
jobs:
  a:
    steps:
      - run: mkdir -p out && echo from-a > out/a.txt
    artifacts: [out/a.txt]
  b:
    needs: [a]
    steps:
      - run: test "$(cat out/a.txt)" = from-a && echo from-b > b.txt
    artifacts: [b.txt]
  c:
    needs: [a]
    steps:
      - run: cat out/a.txt > c.txt && echo from-c >> c.txt
    artifacts: [c.txt]
  d:
    needs: [b, c]
    steps:
      - run: test "$(cat b.txt)" = from-b && grep -q from-c c.txt && grep -q from-a c.txt
"#,
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = repo.summary(1);
    assert_eq!(summary["status"], "succeeded");
    for name in ["a", "b", "c", "d"] {
        assert_eq!(job(&summary, name)["status"], "succeeded", "{name}");
    }
    assert_eq!(job(&summary, "a")["artifacts"][0], "out/a.txt");
    // b and c both waited for a; d waited for both.
    let start = |n: &str| {
        job(&summary, n)["started_at"]
            .as_str()
            .expect("time")
            .to_string()
    };
    let end = |n: &str| {
        job(&summary, n)["finished_at"]
            .as_str()
            .expect("time")
            .to_string()
    };
    assert!(start("b") >= end("a") && start("c") >= end("a"));
    assert!(start("d") >= end("b") && start("d") >= end("c"));
}

#[test]
fn the_run_state_stays_out_of_git_add() {
    let repo = Repo::new("jobs:\n  a:\n    steps:\n      - run: true\n", &[]);
    // A project that has never heard of Slipway's state directory.
    repo.write(".gitignore", "target/\n");
    repo.git(&[
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-qam",
        "plain",
    ]);
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(repo.path())
        .output()
        .expect("git status");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "the clone is clean"
    );
}

#[test]
fn workspace_has_tracked_and_untracked_files_but_not_ignored_ones() {
    let repo = Repo::new(
        "jobs:\n  look:\n    steps:\n      - run: test -f src/lib.rs && test -f notes.txt && test ! -e target && test ! -e .slipway\n",
        &[("src/lib.rs", "// code")],
    );
    repo.write("notes.txt", "untracked, not ignored");
    repo.write("target/big.bin", "ignored");
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn cache_is_restored_on_the_second_run() {
    // The step does real work (hashing 300 MB) only when the cache is empty.
    let repo = Repo::new(
        r#"
jobs:
  deps:
    cache:
      key: deps-{{ hash "deps.lock" }}
      paths: [deps]
    steps:
      - run: |
          if [ -f deps/ready ]; then echo "cache hit"; exit 0; fi
          mkdir -p deps
          head -c 300000000 /dev/zero | sha256sum > deps/ready
"#,
        &[("deps.lock", "v1")],
    );
    let first = repo.slipway(&["run"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = repo.slipway(&["run"]);
    assert!(second.status.success(), "{}", text(&second));
    let (one, two) = (repo.summary(1), repo.summary(2));
    let (j1, j2) = (job(&one, "deps"), job(&two, "deps"));
    assert_eq!(j1["cache_misses"].as_array().expect("misses").len(), 1);
    assert_eq!(j2["cache_hits"], j1["cache_misses"]);
    assert!(text(&second).contains("cache hit"));
    let step_ms = |j: &serde_json::Value| j["steps"][0]["duration_ms"].as_u64().expect("ms");
    assert!(
        step_ms(j2) * 2 < step_ms(j1),
        "filled {} ms, restored {} ms",
        step_ms(j1),
        step_ms(j2)
    );
    // A changed lock file means a new key: a miss again.
    repo.write("deps.lock", "v2");
    let third = repo.slipway(&["run"]);
    assert!(third.status.success(), "{}", text(&third));
    assert_eq!(
        job(&repo.summary(3), "deps")["cache_misses"]
            .as_array()
            .expect("misses")
            .len(),
        1
    );
}

#[test]
fn host_and_container_jobs_share_artifacts() {
    require_docker();
    let repo = Repo::new(
        &format!(
            r#"
jobs:
  in-container:
    image: {BUSYBOX}
    env:
      WHERE: container
    steps:
      - name: where am I
        run: echo "in the $WHERE at $SLIPWAY_WORKSPACE" > where.txt
      - run: test -f README && cat where.txt
    artifacts: [where.txt]
  on-host:
    needs: [in-container]
    steps:
      - run: grep -q "in the container at /workspace" where.txt
"#
        ),
        &[("README", "hello")],
    );
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("in the container at /workspace"));
    let summary = repo.summary(1);
    assert_eq!(
        job(&summary, "in-container")["steps"]
            .as_array()
            .expect("steps")
            .len(),
        2
    );
    assert!(containers_of(&repo).is_empty(), "container left behind");
}

#[test]
fn a_failing_job_fails_the_run_and_is_named() {
    let repo = Repo::new(
        r#"
jobs:
  fine:
    steps: [true]
  broken:
    steps:
      - run: echo about to fail && exit 3
      - run: echo never
  after:
    needs: [broken]
    steps: [true]
"#,
        &[],
    );
    let out = repo.slipway(&["run", "-j", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("run 1 failed: broken"), "{all}");
    assert!(!all.contains("never"));
    let summary = repo.summary(1);
    assert_eq!(job(&summary, "broken")["exit_code"], 3);
    assert_eq!(
        job(&summary, "broken")["reason"],
        "step 1 (echo about to fail && exit 3) exited with code 3"
    );
    assert_eq!(job(&summary, "after")["status"], "skipped");
}

#[test]
fn fail_fast_cancels_running_siblings() {
    let repo = Repo::new(
        "jobs:\n  slow:\n    steps: [sleep 600]\n  quick-fail:\n    steps: [exit 1]\n",
        &[],
    );
    let started = Instant::now();
    let out = repo.slipway(&["run", "-j", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let summary = repo.summary(1);
    assert_eq!(job(&summary, "slow")["status"], "canceled");
    assert_eq!(
        job(&summary, "slow")["reason"],
        "canceled: job `quick-fail` failed"
    );
}

#[test]
fn allowed_failure_and_retry() {
    let counter = tempfile::tempdir().expect("tempdir");
    let repo = Repo::new(
        &format!(
            r#"
jobs:
  flaky:
    retry: 2
    steps:
      - run: echo x >> {0}/tries && [ "$(wc -l < {0}/tries)" -ge 2 ]
  optional:
    allow_failure: true
    steps: [exit 1]
"#,
            counter.path().display()
        ),
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = repo.summary(1);
    assert_eq!(job(&summary, "flaky")["attempts"], 2);
    assert_eq!(job(&summary, "optional")["status"], "failed");
}

/// PIDs of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{} {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn timeout_leaves_no_process_alive() {
    // Unique sleep lengths mark this test's processes.
    let marker = format!(
        "{}.{}",
        4000 + std::process::id() % 1000,
        std::process::id()
    );
    let repo = Repo::new(
        &format!(
            "jobs:\n  hang:\n    timeout: 1s\n    steps:\n      - run: |\n          sleep {marker}1 &\n          (sleep {marker}2 &) \n          sleep {marker}3\n"
        ),
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        job(&repo.summary(1), "hang")["reason"],
        "timed out after 1s"
    );
    let survivors = processes_with(&format!("sleep {marker}"));
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}

#[test]
fn background_processes_do_not_outlive_their_job() {
    let marker = format!(
        "{}.{}",
        5000 + std::process::id() % 1000,
        std::process::id()
    );
    let repo = Repo::new(
        &format!("jobs:\n  leak:\n    steps:\n      - run: sleep {marker} &\n"),
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(processes_with(&format!("sleep {marker}")).is_empty());
}

#[test]
fn ctrl_c_removes_the_container() {
    require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  long:\n    image: {BUSYBOX}\n    steps:\n      - run: echo container-ready && sleep 600\n"
        ),
        &[],
    );
    // Interrupt once the step runs inside its container.
    let code = interrupt_when(&repo, "container-ready", || {
        assert_eq!(containers_of(&repo).len(), 1);
    });
    assert_eq!(code, Some(130));
    assert!(
        containers_of(&repo).is_empty(),
        "container left after Ctrl-C"
    );
    assert_eq!(job(&repo.summary(1), "long")["status"], "canceled");
}

#[test]
fn missing_image_is_an_error_that_says_what_to_do() {
    require_docker();
    let repo = Repo::new(
        "jobs:\n  x:\n    image: slipway-test/does-not-exist:1\n    steps: [true]\n",
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out);
    assert!(
        all.contains("image `slipway-test/does-not-exist:1` is not on this machine"),
        "{all}"
    );
    assert!(
        all.contains("docker build -t slipway-test/does-not-exist:1"),
        "{all}"
    );
}

#[test]
fn job_selection_runs_needs_only() {
    let repo = Repo::new(
        "jobs:\n  base:\n    steps: [true]\n  wanted:\n    needs: [base]\n    steps: [true]\n  other:\n    steps: [true]\n",
        &[],
    );
    let out = repo.slipway(&["run", "--job", "wanted"]);
    assert!(out.status.success(), "{}", text(&out));
    let names: Vec<String> = repo.summary(1)["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(names, ["base", "wanted"]);
    let out = repo.slipway(&["run", "--job", "nope"]);
    assert!(text(&out).contains("there is no job `nope`"));
}

#[test]
fn image_build_tags_and_labels_the_image() {
    require_docker();
    let tag = format!("slipway-test/built:{}", std::process::id());
    let repo = Repo::new(
        &format!(
            "jobs:\n  image:\n    image_build:\n      context: app\n      tags: [\"{tag}\", \"slipway-test/built:run-{{{{ run.number }}}}\"]\n"
        ),
        &[
            (
                "app/Dockerfile",
                &format!("FROM {BUSYBOX}\nCOPY hello.txt /hello.txt\n"),
            ),
            ("app/hello.txt", "hi"),
        ],
    );
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    let inspect = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"slipway.job\"}}",
            &tag,
        ])
        .output()
        .expect("docker");
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "image");
    assert_eq!(
        job(&repo.summary(1), "image")["images"][1],
        "slipway-test/built:run-1"
    );
    let _ = Command::new("docker")
        .args(["rmi", &tag, "slipway-test/built:run-1"])
        .output();
}

#[test]
fn ctrl_c_kills_host_steps() {
    let marker = format!(
        "{}.{}",
        6000 + std::process::id() % 1000,
        std::process::id()
    );
    let repo = Repo::new(
        &format!("jobs:\n  long:\n    steps:\n      - run: echo host-ready && sleep {marker}\n"),
        &[],
    );
    assert_eq!(interrupt_when(&repo, "host-ready", || {}), Some(130));
    assert!(processes_with(&format!("sleep {marker}")).is_empty());
}

/// Runs `slipway run`, waits for a line containing `ready`, calls `check`,
/// sends SIGINT (what Ctrl-C sends) and returns the exit code.
fn interrupt_when(repo: &Repo, ready: &str, check: impl FnOnce()) -> Option<i32> {
    let (mut child, lines) = common::run_until(repo, &["run"], ready);
    check();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let _: Vec<String> = lines.map_while(Result::ok).collect();
    child.wait().expect("wait").code()
}

#[test]
fn steps_never_see_slipways_own_settings() {
    let repo = Repo::new(
        "jobs:\n  peek:\n    steps:\n      - run: echo \"key=${SLIPWAY_SECRET_KEY:-absent} db=${SLIPWAY_DATABASE_URL:-absent}\"\n",
        &[],
    );
    let out = common::slipway_cmd(repo.path())
        .arg("run")
        .env("SLIPWAY_SECRET_KEY", "00112233-not-for-steps")
        .env("SLIPWAY_DATABASE_URL", "postgres://u:pw@db/x")
        .output()
        .expect("slipway runs");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("key=absent db=absent"), "{all}");
}
