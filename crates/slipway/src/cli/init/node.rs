//! Node projects (package.json): the package manager its lockfile names, and
//! the test runner its dependencies and scripts name (jest, vitest, mocha or
//! `node --test`), each with its JUnit and LCOV reporters.

use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use super::plan::{Cache, Job, Plan, Report, Runnable, Step};

pub fn plan(dir: &Path) -> anyhow::Result<Option<Plan>> {
    let Some(text) = super::read(dir, "package.json")? else {
        return Ok(None);
    };
    let package: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not valid JSON, so slipway init cannot tell what the project is",
            dir.join("package.json").display()
        )
    })?;
    let manager = Manager::of(dir);
    let runner = Runner::of(&package);
    let str_at = |key: &str| package.get(key).and_then(Value::as_str);
    let mut plan = Plan {
        kind: "node",
        ..Plan::default()
    };
    plan.found.push(format!(
        "Node: package `{}`, {}, tests with {}.",
        str_at("name").unwrap_or("(unnamed)"),
        manager.found,
        runner.name()
    ));
    plan.version_prefix = str_at("version").and_then(super::version_prefix);
    plan.test = test_job(&manager, &runner, &package);
    if let Some(start) = script(&package, "start") {
        plan.build = Some(build_job(dir, &manager, &package));
        plan.run = Some(Runnable {
            command: format!("exec {} start", manager.run),
            why: format!("package.json has a `start` script (`{start}`): the environment runs it."),
        });
    }
    Ok(Some(plan))
}

fn script<'a>(package: &'a Value, name: &str) -> Option<&'a str> {
    package.get("scripts")?.get(name)?.as_str()
}

/// Whether `dependencies` or `devDependencies` name the package.
fn depends_on(package: &Value, name: &str) -> bool {
    ["devDependencies", "dependencies"]
        .iter()
        .any(|k| package.get(k).and_then(|d| d.get(name)).is_some())
}

struct Manager {
    /// What was found, for the header comment.
    found: String,
    install: String,
    install_why: String,
    /// Runs a package's binary: `npx`, `pnpm exec`, `yarn`.
    exec: &'static str,
    /// Runs a package.json script: `npm run`, `pnpm run`, `yarn run`.
    run: &'static str,
    cache: Cache,
}

impl Manager {
    fn of(dir: &Path) -> Manager {
        let has = |f: &str| dir.join(f).is_file();
        if has("pnpm-lock.yaml") {
            return Manager::pnpm();
        }
        if has("yarn.lock") {
            // Yarn 2+ (berry) keeps .yarnrc.yml and calls a frozen install `--immutable`.
            let berry = has(".yarnrc.yml");
            let flag = if berry {
                "--immutable"
            } else {
                "--frozen-lockfile"
            };
            return Manager {
                found: "yarn (yarn.lock)".into(),
                install: format!("yarn install {flag}"),
                install_why: format!("yarn.lock: installs exactly what it locks (`{flag}`)."),
                exec: "yarn",
                run: "yarn run",
                cache: Cache::new(
                    "yarn-{{ hash \"yarn.lock\" }}",
                    &["~/.cache/yarn"],
                    "yarn's package cache, in the job's home where yarn keeps it.",
                ),
            };
        }
        let locked = has("package-lock.json") || has("npm-shrinkwrap.json");
        let (install, why) = match locked {
            true => (
                "npm ci",
                "package-lock.json: `npm ci` installs exactly what it locks.",
            ),
            false => (
                "npm install --no-package-lock",
                "No lockfile: the newest versions package.json allows (commit a package-lock.json \
                 and write `npm ci` for repeatable builds).",
            ),
        };
        Manager {
            found: format!(
                "npm ({})",
                if locked {
                    "package-lock.json"
                } else {
                    "no lockfile"
                }
            ),
            install: install.into(),
            install_why: why.into(),
            exec: "npx --no-install",
            run: "npm run",
            cache: Cache::new(
                "npm-{{ hash \"package-lock.json\" \"package.json\" }}",
                &["~/.npm"],
                "npm's download cache, in the job's home where npm keeps it.",
            ),
        }
    }

    fn pnpm() -> Manager {
        let mut why = "pnpm-lock.yaml: installs exactly what it locks.".to_string();
        if !super::on_path("pnpm") {
            why.push_str(
                " pnpm is not on this machine's PATH: `corepack enable pnpm` puts it there.",
            );
        }
        Manager {
            found: "pnpm (pnpm-lock.yaml)".into(),
            install: "pnpm install --frozen-lockfile".into(),
            install_why: why,
            exec: "pnpm exec",
            run: "pnpm run",
            cache: Cache::new(
                "pnpm-{{ hash \"pnpm-lock.yaml\" }}",
                &["~/.local/share/pnpm/store"],
                "pnpm's content-addressed store, in the job's home where pnpm keeps it.",
            ),
        }
    }
}

enum Runner {
    Jest,
    Vitest,
    Mocha,
    NodeTest,
    /// Only `npm test`, whatever it runs.
    Script,
    None,
}

impl Runner {
    fn of(package: &Value) -> Runner {
        let test = script(package, "test").unwrap_or("");
        let named = |tool: &str| depends_on(package, tool) || test.contains(tool);
        if named("vitest") {
            Runner::Vitest
        } else if named("jest") {
            Runner::Jest
        } else if named("mocha") {
            Runner::Mocha
        } else if test.contains("node --test") {
            Runner::NodeTest
        } else if !test.is_empty() && !test.contains("no test specified") {
            Runner::Script
        } else {
            Runner::None
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Runner::Jest => "jest",
            Runner::Vitest => "vitest",
            Runner::Mocha => "mocha",
            Runner::NodeTest => "node's own test runner",
            Runner::Script => "the `test` script",
            Runner::None => "no test runner found",
        }
    }
}

fn test_job(m: &Manager, runner: &Runner, package: &Value) -> Job {
    let mut job = Job {
        steps: vec![Step::new("install", &m.install, &m.install_why)],
        caches: vec![m.cache.clone()],
        ..Job::default()
    };
    match runner {
        Runner::Jest => jest(&mut job, m, package),
        Runner::Vitest => vitest(&mut job, m, package),
        Runner::Mocha => mocha(&mut job, m, package),
        Runner::NodeTest => node_test(&mut job),
        Runner::Script => {
            job.steps.push(Step::new(
                "tests",
                "npm test",
                "The `test` script; its runner is none slipway init knows, so no report is read.",
            ));
            job.notes.push(
                "No test report: write the runner's JUnit report and LCOV coverage, then add \
                 `reports:` (see the README's quality gates section)."
                    .into(),
            );
        }
        Runner::None => job.notes.push(
            "package.json names no test runner (jest, vitest, mocha or `node --test`): add tests, \
             then their reports."
                .into(),
        ),
    }
    job
}

/// A reporter the project does not list is installed for the job only
/// (`--no-save`: package.json and the lockfile stay as committed).
fn add_missing(job: &mut Job, m: &Manager, package: &Value, tools: &[&str]) {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !depends_on(package, t))
        .collect();
    if missing.is_empty() {
        return;
    }
    let add = match m.exec {
        "pnpm exec" => "pnpm add --save-dev",
        "yarn" => "yarn add --dev",
        _ => "npm install --no-save",
    };
    job.steps.push(Step::new(
        "reporters",
        format!("{add} {}", missing.join(" ")),
        format!(
            "{} not in package.json; the gate needs its report (add it to devDependencies to pin it).",
            missing.join(" and ")
        ),
    ));
}

fn jest(job: &mut Job, m: &Manager, package: &Value) {
    add_missing(job, m, package, &["jest-junit"]);
    job.steps.push(Step::new(
        "tests",
        format!(
            "JEST_JUNIT_OUTPUT_FILE=junit.xml {} jest --ci --coverage --coverageReporters=lcov --coverageReporters=text-summary --reporters=default --reporters=jest-junit",
            m.exec
        ),
        "jest found in package.json: its JUnit reporter (jest-junit) and LCOV coverage.",
    ));
    job.reports.junit = Report::new("junit.xml", "jest-junit's report.");
    job.reports.coverage = Report::new("coverage/lcov.info", "jest's LCOV coverage.");
}

fn vitest(job: &mut Job, m: &Manager, package: &Value) {
    let coverage = depends_on(package, "@vitest/coverage-v8")
        || depends_on(package, "@vitest/coverage-istanbul");
    let mut run = format!(
        "{} vitest run --reporter=default --reporter=junit --outputFile.junit=junit.xml",
        m.exec
    );
    if coverage {
        run.push_str(
            " --coverage.enabled --coverage.reporter=lcov --coverage.reporter=text-summary",
        );
        job.reports.coverage = Report::new("coverage/lcov.info", "vitest's LCOV coverage.");
    } else {
        job.notes.push(
            "No coverage: vitest needs @vitest/coverage-v8 (of vitest's own version) in \
             devDependencies; add it and run `slipway init --stdout` again."
                .into(),
        );
    }
    job.steps.push(Step::new(
        "tests",
        run,
        "vitest found in package.json: its built-in JUnit reporter for the gate.",
    ));
    job.reports.junit = Report::new("junit.xml", "vitest's JUnit report.");
}

fn mocha(job: &mut Job, m: &Manager, package: &Value) {
    let coverage = if depends_on(package, "nyc") {
        "nyc"
    } else {
        "c8"
    };
    add_missing(job, m, package, &["mocha-junit-reporter", coverage]);
    // The project's own arguments (spec globs, --require) come from its test script.
    let args = script(package, "test")
        .and_then(|t| {
            t.split_once("mocha")
                .map(|(_, rest)| rest.trim().to_string())
        })
        .filter(|rest| !rest.contains("&&") && !rest.contains('|') && !rest.contains(';'))
        .unwrap_or_default();
    let args = if args.is_empty() {
        String::new()
    } else {
        format!(" {args}")
    };
    job.steps.push(Step::new(
        "tests",
        format!(
            "{} {coverage} --reporter=lcov --reporter=text-summary mocha{args} --reporter mocha-junit-reporter --reporter-options mochaFile=junit.xml",
            m.exec
        ),
        format!("mocha found in package.json: mocha-junit-reporter for the gate, under {coverage} for LCOV coverage."),
    ));
    job.reports.junit = Report::new("junit.xml", "mocha-junit-reporter's report.");
    job.reports.coverage =
        Report::new("coverage/lcov.info", format!("{coverage}'s LCOV coverage."));
}

fn node_test(job: &mut Job) {
    job.steps.push(Step::new(
        "tests",
        "node --test --experimental-test-coverage --test-reporter=spec --test-reporter-destination=stdout --test-reporter=junit --test-reporter-destination=junit.xml --test-reporter=lcov --test-reporter-destination=coverage.lcov",
        "The test script runs `node --test`: node's own JUnit and LCOV reporters, no package needed.",
    ));
    job.reports.junit = Report::new("junit.xml", "node --test's JUnit report.");
    job.reports.coverage = Report::new("coverage.lcov", "node --test's LCOV coverage.");
}

/// Installs and builds, and keeps what `start` needs: the manifest,
/// node_modules and the project's top-level code.
fn build_job(dir: &Path, m: &Manager, package: &Value) -> Job {
    let mut steps = vec![Step::new("install", &m.install, &m.install_why)];
    if script(package, "build").is_some() {
        steps.push(Step::new(
            "build",
            format!("{} build", m.run),
            "package.json has a `build` script.",
        ));
    }
    let mut artifacts = vec!["package.json".to_string(), "node_modules/**".to_string()];
    for dir_name in ["src", "lib", "dist", "build", "bin", "public", "server"] {
        if dir.join(dir_name).is_dir() || (dir_name == "dist" && script(package, "build").is_some())
        {
            artifacts.push(format!("{dir_name}/**"));
        }
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let code = [".js", ".mjs", ".cjs"].iter().any(|e| name.ends_with(e));
        if code && entry.path().is_file() && !name.contains("config") {
            artifacts.push(name);
        }
    }
    artifacts.sort();
    artifacts.dedup();
    Job {
        steps,
        caches: vec![m.cache.clone()],
        artifacts,
        ..Job::default()
    }
}
