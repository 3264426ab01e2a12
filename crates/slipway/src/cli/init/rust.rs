//! Cargo projects: a package or a workspace, tested with cargo-nextest (for a
//! JUnit report) or `cargo test`, linted with clippy's JSON, covered with
//! cargo-llvm-cov where it is installed.

use std::path::Path;

use super::plan::{Cache, Job, Plan, Report, Runnable, Step};

pub fn plan(dir: &Path) -> anyhow::Result<Option<Plan>> {
    let Some(manifest) = super::read_toml(dir, "Cargo.toml")? else {
        return Ok(None);
    };
    let package = manifest.get("package").and_then(|p| p.as_table());
    let workspace = manifest.contains_key("workspace");
    let name = package
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let locked = dir.join("Cargo.lock").is_file();
    let flags = Flags { workspace, locked };
    let mut plan = Plan {
        kind: "rust",
        env: vec![("CARGO_TERM_COLOR".into(), "never".into())],
        ..Plan::default()
    };
    plan.found.push(match (&name, workspace) {
        (Some(n), true) => format!("Rust: Cargo workspace with root package `{n}`."),
        (Some(n), false) => format!("Rust: Cargo package `{n}`."),
        (None, _) => "Rust: Cargo workspace (every member is built and tested).".into(),
    });
    if !locked {
        plan.found.push(
            "No Cargo.lock: builds resolve dependencies afresh (commit one for repeatable builds)."
                .into(),
        );
    }
    plan.version_prefix = package
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .and_then(super::version_prefix);
    plan.test = test_job(&flags);
    if let Some(bin) = name.as_deref().and_then(|n| binary(dir, &manifest, n)) {
        let (build, run) = build_job(&flags, &bin);
        plan.build = Some(build);
        plan.run = Some(run);
    }
    Ok(Some(plan))
}

struct Flags {
    workspace: bool,
    locked: bool,
}

impl Flags {
    /// `--workspace --locked` as far as they apply.
    fn cargo(&self) -> String {
        let mut f = String::new();
        if self.workspace {
            f.push_str(" --workspace");
        }
        if self.locked {
            f.push_str(" --locked");
        }
        f
    }

    fn lock_hash(&self) -> &'static str {
        match self.locked {
            true => "{{ hash \"Cargo.lock\" }}",
            false => "{{ hash \"**/Cargo.toml\" }}",
        }
    }
}

fn test_job(flags: &Flags) -> Job {
    let mut job = Job::default();
    let cargo = flags.cargo();
    let nextest = super::on_path("cargo-nextest");
    let llvm_cov = super::on_path("cargo-llvm-cov");
    job.steps.push(test_step(&cargo, nextest, llvm_cov));
    if nextest {
        job.reports.junit = Report::new(
            "target/nextest/ci/junit.xml",
            "cargo-nextest's JUnit report: tests run, failed and why, for the gate.",
        );
    } else {
        job.notes.push(
            "cargo-nextest is not installed here, and `cargo test` writes no JUnit report, so the \
             gate cannot count tests: `cargo install cargo-nextest` and run `slipway init --stdout` \
             again to see the step with a report."
                .into(),
        );
    }
    if llvm_cov {
        job.reports.coverage = Report::new(
            "coverage.lcov",
            "cargo-llvm-cov's LCOV: coverage of new code for the gate.",
        );
    } else {
        job.notes.push(
            "No coverage: cargo-llvm-cov is not installed here. To add it: `cargo install \
             cargo-llvm-cov` (and `rustup component add llvm-tools-preview`), run the tests as \
             `cargo llvm-cov nextest --profile ci --lcov --output-path coverage.lcov`, add \
             `coverage: coverage.lcov` to the reports and `new_coverage >= 80` to the gate."
                .into(),
        );
    }
    if super::on_path("cargo-clippy") {
        job.steps.push(Step::new(
            "clippy",
            format!("cargo clippy{cargo} --all-targets --message-format=json > clippy.jsonl"),
            "clippy's warnings as JSON lines, which the gate reads as issues (warnings are major).",
        ));
        job.reports.issues = Report::new(
            "clippy.jsonl",
            "clippy's findings: a new warning on a changed line fails the gate.",
        );
    }
    job.caches = caches(flags, "test");
    job
}

fn test_step(cargo: &str, nextest: bool, llvm_cov: bool) -> Step {
    if !nextest {
        let run = match llvm_cov {
            true => format!("cargo llvm-cov{cargo} --lcov --output-path coverage.lcov"),
            false => format!("cargo test{cargo}"),
        };
        return Step::new("tests", run, "The tests, as `cargo test` runs them.");
    }
    // nextest writes JUnit only for a profile that asks; a tool config file
    // adds that profile without touching the project's own .config/nextest.toml.
    let runner = match llvm_cov {
        true => format!(
            "cargo llvm-cov nextest{cargo} --profile ci --lcov --output-path coverage.lcov \\\n  --tool-config-file \"slipway:$PWD/target/slipway-nextest.toml\""
        ),
        false => format!(
            "cargo nextest run{cargo} --profile ci --no-tests=warn \\\n  --tool-config-file \"slipway:$PWD/target/slipway-nextest.toml\""
        ),
    };
    Step::new(
        "tests",
        format!(
            "mkdir -p target\nprintf '[profile.ci.junit]\\npath = \"junit.xml\"\\n' > target/slipway-nextest.toml\n{runner}"
        ),
        "cargo-nextest is installed: the tests with a JUnit report (profile `ci`, \
         target/nextest/ci/junit.xml). Doc tests are not run by nextest; add `cargo test --doc` \
         for a library that has them.",
    )
}

fn caches(flags: &Flags, job: &str) -> Vec<Cache> {
    let hash = flags.lock_hash();
    vec![
        Cache::new(
            format!("cargo-registry-{hash}"),
            &["~/.cargo/registry"],
            "Downloaded crates, kept in the job's home where cargo keeps them.",
        ),
        Cache::new(
            format!("{job}-target-{hash}"),
            &["target"],
            "Compiled dependencies: a restored target rebuilds only what changed.",
        ),
    ]
}

/// The binary the package builds, if any: `[[bin]]`, `src/main.rs` or `src/bin/NAME.rs`.
fn binary(dir: &Path, manifest: &toml::Table, package: &str) -> Option<String> {
    let named = manifest
        .get("bin")
        .and_then(|b| b.as_array())
        .and_then(|bins| bins.first())
        .and_then(|b| b.get("name"))
        .and_then(|n| n.as_str());
    if let Some(name) = named {
        return Some(name.to_string());
    }
    if dir.join("src/main.rs").is_file() {
        return Some(package.to_string());
    }
    let mut bins: Vec<String> = std::fs::read_dir(dir.join("src/bin"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    bins.sort();
    bins.into_iter().next()
}

fn build_job(flags: &Flags, bin: &str) -> (Job, Runnable) {
    let locked = if flags.locked { " --locked" } else { "" };
    let path = format!("target/release/{bin}");
    let job = Job {
        steps: vec![Step::new(
            "release build",
            format!("cargo build --release{locked} --bin {bin}"),
            format!("The binary `{bin}`, optimised, for the release."),
        )],
        caches: caches(flags, "build"),
        artifacts: vec![path.clone()],
        ..Job::default()
    };
    let run = Runnable {
        command: format!("./{path}"),
        why: format!("The package builds a binary, `{bin}`: the environment runs it."),
    };
    (job, run)
}
