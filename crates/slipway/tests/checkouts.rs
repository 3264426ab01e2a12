//! A job's workspace is a git checkout of the run's commit: tags for
//! `git describe` and setuptools-scm, the branch by name, `checkout:`
//! settings (depth, submodules), on a server worker, on an agent (which
//! fetches only the commits it lacks) and in `slipway run`.

mod common;

use std::path::Path;
use std::process::Command;

use common::server::{AgentProcess, Remote, ServerProcess, commit_file, git};
use common::{Repo, job, text};

/// A package whose version comes from its git tag, and a job that installs
/// it (no index: the build backend is in the test interpreter) and prints
/// the version the installed package reports.
const PYPROJECT: &str = r#"[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "slipway-scm-fixture"
dynamic = ["version"]

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools_scm]
"#;
const INIT_PY: &str = "from importlib.metadata import version\n\n\
                       __version__ = version(\"slipway-scm-fixture\")\n";

fn python() -> String {
    std::env::var("SLIPWAY_TEST_PYTHON").expect(
        "SLIPWAY_TEST_PYTHON is not set: run scripts/test, which installs setuptools-scm \
         (scripts/lib/python.sh ensure_setuptools_scm)",
    )
}

fn scm_pipeline(python: &str) -> String {
    format!(
        "jobs:\n  package:\n    steps:\n      - run: |\n          \
         {python} -m pip install -q --no-cache-dir --no-build-isolation --no-index --no-deps --target installed .\n          \
         PYTHONPATH=installed {python} -c 'import slipway_scm_fixture as p; print(\"installed version\", p.__version__)'\n"
    )
}

fn log(server: &ServerProcess, run: &str, job: &str) -> String {
    let out = server.cli(&["logs", run, job]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn trigger(server: &ServerProcess, run: &str) {
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let status = server.run_status(run);
    assert!(
        out.status.success() && status["run"]["state"] == "succeeded",
        "{}\n{status}\n{}",
        text(&out),
        String::from_utf8_lossy(&server.cli(&["logs", run]).stdout)
    );
}

#[test]
fn a_setuptools_scm_package_takes_its_version_from_the_tag_on_a_server_and_in_slipway_run() {
    let python = python();
    let pipeline = scm_pipeline(&python);
    let files = [
        ("pyproject.toml", PYPROJECT),
        ("src/slipway_scm_fixture/__init__.py", INIT_PY),
    ];

    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), &pipeline);
    for (path, content) in files {
        std::fs::create_dir_all(remote.work.join(path).parent().expect("parent")).expect("mkdir");
        commit_file(&remote.work, path, content, "package");
    }
    git(&remote.work, &["tag", "-a", "-m", "release", "v1.2.3"]);
    git(&remote.work, &["push", "-q", "origin", "main", "--tags"]);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    trigger(&server, "demo/1");
    let out = log(&server, "demo/1", "package");
    assert!(out.contains("installed version 1.2.3"), "{out}");

    let repo = Repo::new(&pipeline, &files);
    repo.git(&["tag", "v1.2.3"]);
    let run = repo.slipway(&["run"]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        text(&run).contains("installed version 1.2.3"),
        "{}",
        text(&run)
    );
}

/// The mirror's pack files and their sizes, oldest first.
fn packs(mirror: &Path) -> Vec<u64> {
    let mut packs: Vec<(std::time::SystemTime, u64)> =
        std::fs::read_dir(mirror.join("objects/pack"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "pack"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| (m.modified().expect("mtime"), m.len()))
                    .collect()
            })
            .unwrap_or_default();
    packs.sort();
    packs.into_iter().map(|(_, len)| len).collect()
}

#[test]
fn an_agent_checks_out_tags_and_the_branch_and_fetches_only_new_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = "jobs:\n  describe:\n    steps:\n      - run: |\n          \
                    echo \"describe $(git describe --tags)\"\n          \
                    echo \"branch $(git rev-parse --abbrev-ref HEAD)\"\n          \
                    echo \"commit $(git rev-parse HEAD)\"\n          \
                    echo \"origin $(git config remote.origin.url)\"\n";
    let remote = Remote::new(tmp.path(), pipeline);
    // History worth transferring once: 300 KB nothing compresses.
    let noise: String = (0..20_000u32)
        .map(|i| format!("{:08x}\n", i.wrapping_mul(2_654_435_761)))
        .collect();
    let tagged = remote.commit("noise.txt", &noise, "bulk");
    git(&remote.work, &["tag", "-a", "-m", "first", "v0.1.0"]);
    git(&remote.work, &["push", "-q", "origin", "main", "--tags"]);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let agent_dir = tmp.path().join("agent");
    let _agent = AgentProcess::start(&server, "a1", &agent_dir);

    trigger(&server, "demo/1");
    let first = log(&server, "demo/1", "describe");
    assert!(first.contains("describe v0.1.0"), "{first}");
    assert!(first.contains("branch main"), "{first}");
    assert!(first.contains(&format!("commit {tagged}")), "{first}");
    assert!(
        first.contains(&format!("origin {}", remote.bare.display())),
        "{first}"
    );
    let mirror = agent_dir.join("mirrors/1.git");
    let after_first = packs(&mirror);
    assert_eq!(after_first.len(), 1, "{after_first:?}");

    let second = remote.commit("small.txt", "a small change\n", "small");
    remote.push();
    trigger(&server, "demo/2");
    let out = log(&server, "demo/2", "describe");
    let short = &second[..7];
    assert!(
        out.contains(&format!("describe v0.1.0-1-g{short}")),
        "{out}"
    );
    let after_second = packs(&mirror);
    assert_eq!(after_second.len(), 2, "{after_second:?}");
    let (whole, increment) = (after_second[0], after_second[1]);
    eprintln!("agent mirror: first job fetched {whole} bytes of pack, the second {increment}");
    assert!(
        increment * 50 < whole,
        "the second job fetched {increment} bytes, the first {whole}"
    );
}

/// A job that prints what `git describe` says of its checkout.
const DESCRIBE: &str =
    "jobs:\n  describe:\n    steps:\n      - run: echo \"describe $(git describe --tags)\"\n";

#[test]
fn an_agent_mirror_follows_new_tags_and_recovers_from_damage() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), DESCRIBE);
    remote.commit("a.txt", "a\n", "tagged");
    git(&remote.work, &["tag", "-a", "-m", "first", "v0.1.0"]);
    let head = remote.commit("b.txt", "b\n", "after the tag");
    git(&remote.work, &["push", "-q", "origin", "main", "--tags"]);
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    server.add_project(&remote, &[]);
    let agent_dir = tmp.path().join("agent");
    let _agent = AgentProcess::start(&server, "a1", &agent_dir);
    trigger(&server, "demo/1");
    let short = &head[..7];
    let out = log(&server, "demo/1", "describe");
    assert!(
        out.contains(&format!("describe v0.1.0-1-g{short}")),
        "{out}"
    );

    // A new tag on the commit the agent has: no object to send, yet the
    // agent's checkout describes it as the server's workers would.
    git(&remote.work, &["tag", "v0.2.0"]);
    git(&remote.work, &["push", "-q", "origin", "--tags"]);
    trigger(&server, "demo/2");
    let out = log(&server, "demo/2", "describe");
    assert!(out.contains("describe v0.2.0"), "{out}");

    // A mirror missing its packs (and with a bundle a killed agent left)
    // lacks what it says it has: it is fetched whole again.
    let mirror = agent_dir.join("mirrors/1.git");
    let packs = mirror.join("objects/pack");
    for entry in std::fs::read_dir(&packs).expect("packs").flatten() {
        std::fs::remove_file(entry.path()).expect("rm");
    }
    std::fs::write(mirror.join(".incoming-killed.bundle"), "cut short").expect("write");
    let third = remote.commit("c.txt", "c\n", "after the damage");
    remote.push();
    trigger(&server, "demo/3");
    let out = log(&server, "demo/3", "describe");
    assert!(
        out.contains(&format!("describe v0.2.0-1-g{}", &third[..7])),
        "{out}"
    );
    assert!(!mirror.join(".incoming-killed.bundle").exists());
    assert!(agent_dir.join("mirrors/1.git.broken").is_dir());
}

#[test]
fn depth_gives_a_shallow_checkout_and_submodules_are_checked_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let library = tmp.path().join("library");
    std::fs::create_dir_all(&library).expect("mkdir");
    git(&library, &["init", "-q", "-b", "main"]);
    commit_file(&library, "lib.txt", "from the submodule\n", "library");

    let pipeline = "jobs:\n  shallow:\n    checkout: { depth: 1 }\n    steps:\n      - run: \
                    echo \"shallow $(git rev-parse --is-shallow-repository) $(git rev-list --count HEAD)\"\n  \
                    full:\n    checkout: { submodules: true }\n    steps:\n      - run: \
                    echo \"commits $(git rev-list --count HEAD)\" && cat vendor/library/lib.txt\n  \
                    none:\n    checkout: false\n    steps:\n      - run: echo \"files $(ls -A | wc -l)\"\n";
    let remote = Remote::new(tmp.path(), pipeline);
    let status = Command::new("git")
        .args(["-c", "protocol.file.allow=always", "submodule", "add", "-q"])
        .arg(&library)
        .arg("vendor/library")
        .current_dir(&remote.work)
        .status()
        .expect("git");
    assert!(status.success());
    commit_file(&remote.work, "README", "with a submodule\n", "submodule");
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    trigger(&server, "demo/1");
    assert!(log(&server, "demo/1", "shallow").contains("shallow true 1"));
    let full = log(&server, "demo/1", "full");
    assert!(full.contains("commits 2"), "{full}");
    assert!(full.contains("from the submodule"), "{full}");
    assert!(log(&server, "demo/1", "none").contains("files 0"));
}

#[test]
fn slipway_run_checks_out_head_with_the_users_edits_over_it() {
    let pipeline = "jobs:\n  look:\n    steps:\n      - run: |\n          \
                    echo \"branch $(git rev-parse --abbrev-ref HEAD) $(git describe --tags)\"\n          \
                    cat edited.txt new.txt\n          \
                    test ! -e deleted.txt && echo deleted-is-gone\n          \
                    git status --porcelain | sort | tr '\\n' ' '\n";
    let repo = Repo::new(
        pipeline,
        &[
            ("edited.txt", "committed\n"),
            ("deleted.txt", "gone soon\n"),
        ],
    );
    repo.git(&["checkout", "-q", "-b", "feature/x"]);
    repo.git(&["tag", "v2.0.0"]);
    repo.write("edited.txt", "edited, not committed\n");
    repo.write("new.txt", "untracked\n");
    std::fs::remove_file(repo.path().join("deleted.txt")).expect("rm");
    let run = repo.slipway(&["run"]);
    let out = text(&run);
    assert!(run.status.success(), "{out}");
    assert!(out.contains("branch feature/x v2.0.0"), "{out}");
    assert!(out.contains("edited, not committed"), "{out}");
    assert!(out.contains("untracked"), "{out}");
    assert!(out.contains("deleted-is-gone"), "{out}");
    assert!(out.contains(" M edited.txt"), "{out}");
    assert_eq!(job(&repo.summary(1), "look")["status"], "succeeded");
}

#[test]
fn a_restored_cargo_target_rebuilds_only_what_the_next_commit_changed_on_a_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = "jobs:\n  build:\n    cache:\n      key: target-v1\n      paths: [target]\n    \
                    steps:\n      - run: CARGO_TARGET_DIR=target cargo build --offline 2>&1\n";
    let remote = Remote::new(tmp.path(), pipeline);
    for (path, content) in common::TWO_CRATES {
        std::fs::create_dir_all(remote.work.join(path).parent().expect("parent")).expect("mkdir");
        commit_file(&remote.work, path, content, path);
    }
    remote.push();
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    server.add_project(&remote, &[]);
    trigger(&server, "demo/1");
    let first = log(&server, "demo/1", "build");
    assert!(
        first.contains("Compiling helper") && first.contains("Compiling app"),
        "{first}"
    );

    remote.commit(
        "src/main.rs",
        "fn main() { println!(\"{}!\", helper::word()); }\n",
        "louder",
    );
    remote.push();
    trigger(&server, "demo/2");
    let second = log(&server, "demo/2", "build");
    assert!(second.contains("cache: restored `target-v1`"), "{second}");
    assert!(second.contains("Compiling app"), "{second}");
    assert!(!second.contains("Compiling helper"), "{second}");
}

#[test]
fn lfs_without_git_lfs_fails_the_job_saying_what_to_install() {
    let has_lfs = Command::new("git")
        .args(["lfs", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_lfs {
        eprintln!("git-lfs is installed here: the message for its absence cannot be seen");
        return;
    }
    let repo = Repo::new(
        "jobs:\n  big:\n    checkout: { lfs: true }\n    steps: [\"true\"]\n",
        &[],
    );
    let run = repo.slipway(&["run"]);
    assert!(!run.status.success(), "{}", text(&run));
    let reason = job(&repo.summary(1), "big")["reason"].to_string();
    assert!(
        reason.contains("needs Git LFS") && reason.contains("install `git-lfs`"),
        "{reason}"
    );
}
