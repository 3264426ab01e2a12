//! Test harness: real git repositories in temporary directories and the real
//! `slipway` binary run against them.

#![allow(dead_code)]

pub mod browser;
pub mod registry;
pub mod server;
pub mod service;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A Cargo workspace of two crates, `app` depending on `helper` by path, with
/// no other dependency (builds offline): what a restored `target` should
/// spare rebuilding.
pub const TWO_CRATES: [(&str, &str); 4] = [
    (
        "Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nhelper = { path = \"helper\" }\n\n[workspace]\n",
    ),
    (
        "src/main.rs",
        "fn main() { println!(\"{}\", helper::word()); }\n",
    ),
    (
        "helper/Cargo.toml",
        "[package]\nname = \"helper\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    ),
    (
        "helper/src/lib.rs",
        "pub fn word() -> &'static str { \"tiny\" }\n",
    ),
];

/// A git repository with a pipeline file, in a directory removed after the test.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    /// A committed repository holding `.slipway.yml` and the given files.
    pub fn new(pipeline: &str, files: &[(&str, &str)]) -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repo { dir };
        repo.write(".slipway.yml", pipeline);
        repo.write(".gitignore", ".slipway/\ntarget/\n");
        for (path, content) in files {
            repo.write(path, content);
        }
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["add", "."]);
        repo.git(&[
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "init",
        ]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn git(&self, args: &[&str]) {
        let ok = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .status()
            .expect("git runs")
            .success();
        assert!(ok, "git {args:?}");
    }

    /// `slipway ARGS` in the repository.
    pub fn slipway(&self, args: &[&str]) -> Output {
        slipway_cmd(self.path())
            .args(args)
            .output()
            .expect("slipway runs")
    }

    /// The summary of run `n`.
    pub fn summary(&self, n: u64) -> serde_json::Value {
        let path = self.run_dir(n).join("summary.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("summary is JSON")
    }

    pub fn run_dir(&self, n: u64) -> PathBuf {
        self.path().join(".slipway/runs").join(n.to_string())
    }

    /// Every byte Slipway kept about its runs, as text.
    pub fn recorded(&self) -> String {
        let mut all = String::new();
        for entry in files_under(&self.path().join(".slipway/runs")) {
            all.push_str(&String::from_utf8_lossy(
                &std::fs::read(entry).expect("read"),
            ));
        }
        all
    }
}

/// Every file below `dir` (none when it is missing).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn slipway_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.current_dir(dir);
    cmd
}

/// The job's entry in a summary.
pub fn job<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {summary}"))
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The local base image the container tests use; built from busybox-static when missing.
pub const BUSYBOX: &str = "slipway/busybox:latest";

pub fn require_docker() {
    run_setup(
        "source \"$LIB/docker.sh\" && ensure_busybox_image",
        &format!("container tests need a running Docker engine and {BUSYBOX}"),
    );
}

/// Runs a setup line of scripts/lib (`$LIB` names that folder) and fails the
/// test with `need` when it fails: the setup scripts/test does before the suite.
pub fn run_setup(script: &str, need: &str) {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib");
    let ok = Command::new("bash")
        .args(["-c", script])
        .env("LIB", &lib)
        .status()
        .expect("bash")
        .success();
    assert!(ok, "{need}: run scripts/test, which sets it up");
}

/// The rest of a child's output, line by line.
pub type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts `slipway ARGS` in the repository and waits for a line with `ready`;
/// the rest of its output is still to be read (a closed pipe would end it early).
pub fn run_until(repo: &Repo, args: &[&str], ready: &str) -> (Child, Lines) {
    let mut child = slipway_cmd(repo.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains(ready));
    assert!(seen, "slipway {} never printed {ready:?}", args.join(" "));
    (child, lines)
}

/// Containers Slipway started for jobs of this repository, running or not.
pub fn containers_of(repo: &Repo) -> Vec<String> {
    labelled(repo, &["ps", "-aq"])
}

/// Networks Slipway made for jobs of this repository (for their services).
pub fn networks_of(repo: &Repo) -> Vec<String> {
    labelled(repo, &["network", "ls", "-q"])
}

/// The ids `docker LIST…` prints of what carries this repository's
/// `slipway.source` label.
fn labelled(repo: &Repo, list: &[&str]) -> Vec<String> {
    let filter = format!("label=slipway.source={}", repo.path().display());
    let out = Command::new("docker")
        .args(list)
        .args(["--filter", &filter])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {}: {}",
        list.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
