//! Caches that make builds incremental: what is restored keeps its times and
//! modes (build tools judge freshness by them), `hash` over nothing hashes
//! nothing, and paths no cache could ever save are refused up front.

mod common;

use common::{Repo, job, text};

/// The `LABEL=…` lines a run printed, in order.
fn lines_with<'a>(output: &'a str, label: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .collect()
}

#[test]
fn a_restored_file_keeps_its_modification_time_and_mode() {
    let repo = Repo::new(
        r#"
jobs:
  build:
    cache:
      key: out-v1
      paths: [out]
    steps:
      - run: |
          if [ ! -f out/made ]; then mkdir -p out; echo x > out/made; chmod 750 out/made; fi
          echo "stamp=$(stat -c '%y %A' out/made | cut -c1-40)"
"#,
        &[],
    );
    let first = repo.slipway(&["run"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = repo.slipway(&["run"]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(job(&repo.summary(2), "build")["cache_hits"][0], "out-v1");
    let (one, two) = (text(&first), text(&second));
    let (made, restored) = (lines_with(&one, "stamp="), lines_with(&two, "stamp="));
    assert_eq!(made.len(), 1, "{one}");
    // The owner's bits are the file's; group and others get what umask 022
    // gives (README "A job has only its own powers").
    assert_eq!(
        made, restored,
        "saved vs restored (mtime to the ns, owner's mode)"
    );
}

#[test]
fn a_cached_cargo_target_does_not_recompile() {
    // A crate with a path dependency: Cargo rebuilds a crate whose
    // dependency's output is newer than its own, so a restore that stamped
    // files with the time of copying would recompile `app` (`deps/app-…` is
    // copied before `deps/libhelper-….rlib`).
    let repo = Repo::new(
        r#"
jobs:
  build:
    cache:
      key: target-{{ hash "Cargo.toml" "src/**" "helper/**" }}
      paths: [target]
    steps:
      - run: CARGO_TARGET_DIR=target cargo build --offline 2>&1
"#,
        &common::TWO_CRATES,
    );
    let first = repo.slipway(&["run"]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("Compiling app"), "{}", text(&first));
    assert!(
        text(&first).contains("Compiling helper"),
        "{}",
        text(&first)
    );
    let second = repo.slipway(&["run"]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        job(&repo.summary(2), "build")["cache_hits"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(!text(&second).contains("Compiling"), "{}", text(&second));
}

#[test]
fn hash_over_no_file_hashes_nothing_and_says_so() {
    let repo = Repo::new(
        r#"
jobs:
  deps:
    cache:
      key: deps-{{ hash "package-lock.json" }}
      paths: [deps]
    steps:
      - run: mkdir -p deps && echo ok > deps/x
"#,
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("matches no file; it hashes nothing"),
        "{}",
        text(&out)
    );
    assert_eq!(job(&repo.summary(1), "deps")["cache_misses"][0], "deps-");
}

#[test]
fn validate_refuses_cache_paths_that_can_never_be_saved() {
    for path in ["/abs", "../x", "~/../x"] {
        let repo = Repo::new(
            &format!(
                "jobs:\n  deps:\n    cache:\n      key: k\n      paths: [\"{path}\"]\n    steps:\n      - run: true\n"
            ),
            &[],
        );
        let out = repo.slipway(&["validate"]);
        assert_eq!(out.status.code(), Some(1), "{path}: {}", text(&out));
        assert!(
            text(&out).contains(&format!(
                "`{path}` leaves the workspace: a cache can never save it"
            )),
            "{path}: {}",
            text(&out)
        );
    }
}

#[test]
fn a_cached_home_path_is_back_in_the_next_run_on_a_server_worker() {
    use common::server::{Remote, ServerProcess};
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = r#"
jobs:
  tools:
    cache:
      key: tools-v1
      paths: ["~/.cache/x"]
    steps:
      - run: |
          if [ -f ~/.cache/x/made ]; then echo "found=$(cat ~/.cache/x/made)"; exit 0; fi
          mkdir -p ~/.cache/x && echo in-run-1 > ~/.cache/x/made
"#;
    let remote = Remote::new(tmp.path(), pipeline);
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    server.add_project(&remote, &[]);
    let follow = |run: &str| {
        assert!(server.cli(&["trigger", "demo"]).status.success());
        let out = server.cli(&["logs", "-f", run]);
        let status = server.run_status(run);
        assert_eq!(status["run"]["state"], "succeeded", "{status}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = follow("demo/1");
    assert!(
        first.contains("cache: saved `tools-v1` (1 paths)"),
        "{first}"
    );
    // The project's home goes, as on a fresh worker: only the cache can
    // bring `~/.cache/x` back.
    std::fs::remove_dir_all(data.join("work/.homes")).expect("remove the job homes");
    let second = follow("demo/2");
    assert!(second.contains("found=in-run-1"), "{second}");
}
