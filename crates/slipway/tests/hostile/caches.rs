//! A cache entry keeps Slipway's own state (the home part, the source times)
//! under `.slipway`: the unsandboxed server writes it there and reads it
//! back. A job that makes its workspace's `.slipway` a link and caches `*`
//! must not get the server to write or read through that link, and git run
//! by the server never runs with a config the job wrote (issue 13, F1).

use std::path::{Path, PathBuf};

use super::workspace_paths::{run, setup};

/// Everything below `dir` (links not followed), relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        found.push(PathBuf::from(entry.file_name()));
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let inner = tree(&path).into_iter();
            found.extend(inner.map(|p| PathBuf::from(entry.file_name()).join(p)));
        }
    }
    found.sort();
    found
}

#[test]
fn a_cache_of_star_never_writes_through_the_jobs_slipway_link() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, data, remote) = setup(tmp.path());
    // Another project's cache, the data directory, `/`: any directory the
    // server may write. Here one the test can watch.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("home")).expect("mkdir");
    std::fs::write(outside.join("home/secret"), "server-secret").expect("write");
    let before = tree(&outside);
    let pipeline = format!(
        "jobs:\n  poison:\n    steps:\n      - run: |\n          ln -s {} .slipway\n          mkdir -p ~/.x && echo h > ~/.x/f\n          echo out > built\n    cache:\n      key: star\n      paths: [\"*\", \"~/.x\"]\n",
        outside.display()
    );
    let (state, log) = run(&server, &remote, &pipeline);
    assert_eq!(state, "succeeded", "{log}");
    assert!(log.contains("cache: saved `star`"), "the cache was saved");
    assert_eq!(tree(&outside), before, "the server wrote through the link");
    let entries = tree(&data.join("caches"));
    let links: Vec<_> = entries
        .iter()
        .filter(|p| p.ends_with(".slipway"))
        .filter(|p| {
            let full = data.join("caches").join(p);
            full.symlink_metadata().is_ok_and(|m| !m.is_dir())
        })
        .collect();
    assert!(links.is_empty(), "an entry keeps the job's link: {links:?}");
    assert!(
        entries.iter().any(|p| p.ends_with("built")),
        "the entry holds the job's files: {entries:?}"
    );
}

#[test]
fn a_jobs_git_config_never_runs_as_the_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (server, _data, remote) = setup(tmp.path());
    let pwned = tmp.path().join("pwned");
    let pipeline = format!(
        "jobs:\n  fsmonitor:\n    steps:\n      - run: |\n          git config core.fsmonitor 'touch {}; false'\n          git config core.hooksPath /nonexistent\n          echo out > built\n    cache:\n      key: fsm\n      paths: [built]\n    artifacts: [built]\n",
        pwned.display()
    );
    let (state, log) = run(&server, &remote, &pipeline);
    assert_eq!(state, "succeeded", "{log}");
    assert!(log.contains("cache: saved `fsm`"), "the cache was saved");
    assert!(
        !pwned.exists(),
        "the job's core.fsmonitor ran as the server"
    );
}
