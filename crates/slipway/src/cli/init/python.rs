//! Python projects (pyproject.toml, setup.cfg, setup.py): a venv in the
//! workspace, the package installed with its test extra, pytest with a JUnit
//! report under coverage.py with an LCOV one.

use std::path::Path;

use super::plan::{Cache, Job, Plan, Report, Runnable, Step};

/// What the project's own files say.
#[derive(Debug, Default)]
struct Project {
    name: Option<String>,
    version: Option<String>,
    /// The optional-dependencies group holding pytest, and what it lists.
    test_extra: Option<(String, Vec<String>)>,
    poetry: bool,
    backend: Option<String>,
    /// `[project.scripts]`: the first console script.
    script: Option<String>,
    /// A package directory with a `__main__.py`.
    main_module: Option<String>,
}

pub fn plan(dir: &Path) -> anyhow::Result<Option<Plan>> {
    let pyproject = super::read_toml(dir, "pyproject.toml")?;
    let setup_cfg = super::read(dir, "setup.cfg")?;
    let setup_py = dir.join("setup.py").is_file();
    if pyproject.is_none() && setup_cfg.is_none() && !setup_py {
        return Ok(None);
    }
    let mut project = pyproject.as_ref().map(from_pyproject).unwrap_or_default();
    if project.test_extra.is_none() {
        project.test_extra = setup_cfg.as_deref().and_then(extra_from_setup_cfg);
    }
    project.main_module = main_module(dir);
    let mut plan = Plan {
        kind: "python",
        ..Plan::default()
    };
    plan.found
        .push(found(&project, pyproject.is_some(), setup_py));
    plan.version_prefix = project.version.as_deref().and_then(super::version_prefix);
    plan.test = test_job(&project);
    if let Some(run) = runnable(&project) {
        plan.build = Some(wheel_job());
        plan.run = Some(run);
    }
    Ok(Some(plan))
}

fn found(p: &Project, pyproject: bool, setup_py: bool) -> String {
    let file = match (pyproject, setup_py) {
        (true, _) => "pyproject.toml",
        (false, true) => "setup.py",
        (false, false) => "setup.cfg",
    };
    let name = p.name.as_deref().unwrap_or("(unnamed)");
    let backend = match (&p.backend, p.poetry) {
        (_, true) => " built with Poetry".to_string(),
        (Some(b), _) => format!(" built with {b}"),
        (None, _) => String::new(),
    };
    format!("Python: package `{name}` ({file}){backend}.")
}

fn from_pyproject(t: &toml::Table) -> Project {
    let project = t.get("project").and_then(|p| p.as_table());
    let str_of = |v: Option<&toml::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let extras = project
        .and_then(|p| p.get("optional-dependencies"))
        .and_then(|o| o.as_table());
    let test_extra = extras.and_then(|extras| {
        extras.iter().find_map(|(group, deps)| {
            let deps: Vec<String> = deps
                .as_array()?
                .iter()
                .filter_map(|d| d.as_str().map(requirement_name))
                .collect();
            deps.iter()
                .any(|d| d == "pytest")
                .then(|| (group.clone(), deps))
        })
    });
    let backend = str_of(t.get("build-system").and_then(|b| b.get("build-backend")))
        .map(|b| b.split('.').next().unwrap_or(&b).to_string());
    Project {
        name: str_of(project.and_then(|p| p.get("name"))),
        version: str_of(project.and_then(|p| p.get("version"))),
        test_extra,
        poetry: t.get("tool").and_then(|t| t.get("poetry")).is_some(),
        backend,
        script: project
            .and_then(|p| p.get("scripts"))
            .and_then(|s| s.as_table())
            .and_then(|s| s.keys().next().cloned()),
        main_module: None,
    }
}

/// `pytest-cov>=4; python_version>"3.8"` → `pytest-cov`.
fn requirement_name(req: &str) -> String {
    req.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// `[options.extras_require]` in setup.cfg: the first group naming pytest.
fn extra_from_setup_cfg(text: &str) -> Option<(String, Vec<String>)> {
    let section = text.split("[options.extras_require]").nth(1)?;
    let section = section.split("\n[").next().unwrap_or(section);
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for line in section.lines() {
        let indented = line.starts_with(char::is_whitespace);
        match line.split_once('=') {
            Some((key, value)) if !indented => groups.push((
                key.trim().to_string(),
                value.split(',').map(requirement_name).collect(),
            )),
            _ if indented => {
                if let Some((_, deps)) = groups.last_mut() {
                    deps.push(requirement_name(line.trim()));
                }
            }
            _ => {}
        }
    }
    groups
        .into_iter()
        .find(|(_, deps)| deps.iter().any(|d| d == "pytest"))
}

/// `src/PKG/__main__.py` or `PKG/__main__.py`: the package `python -m` runs.
fn main_module(dir: &Path) -> Option<String> {
    for root in [dir.join("src"), dir.to_path_buf()] {
        let mut found: Vec<String> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("__main__.py").is_file())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.') && n != "tests")
            .collect();
        found.sort();
        if let Some(first) = found.into_iter().next() {
            return Some(first);
        }
    }
    None
}

fn test_job(p: &Project) -> Job {
    let pip = ".venv/bin/python -m pip";
    let (install, why) = install(p, pip);
    let mut job = Job::default();
    job.steps.push(Step::new(
        "virtual environment",
        "python3 -m venv .venv",
        "A venv in the workspace, so the job installs nothing outside it.",
    ));
    job.steps.push(Step::new("install", install, why));
    job.steps.push(Step::new(
        "tests",
        ".venv/bin/python -m coverage run --branch -m pytest --junitxml=junit.xml",
        "pytest under coverage.py: the JUnit report for the gate's test counts, the coverage \
         data for the next step.",
    ));
    job.steps.push(Step::new(
        "coverage report",
        ".venv/bin/python -m coverage lcov -o coverage.lcov",
        "coverage.py's LCOV, for new-code coverage in the gate.",
    ));
    job.reports.junit = Report::new("junit.xml", "pytest's JUnit report (--junitxml).");
    job.reports.coverage = Report::new("coverage.lcov", "coverage.py's LCOV report.");
    job.caches = vec![pip_cache()];
    job
}

/// How the package and its test tools get into the venv, and why so.
fn install(p: &Project, pip: &str) -> (String, String) {
    let mut missing = Vec::new();
    let listed = |tool: &str| {
        p.test_extra
            .as_ref()
            .is_some_and(|(_, deps)| deps.iter().any(|d| d == tool))
    };
    if !listed("pytest") {
        missing.push("pytest");
    }
    if !listed("coverage") && !listed("pytest-cov") {
        missing.push("coverage");
    }
    let tools = match missing.is_empty() {
        true => String::new(),
        false => format!(" {}", missing.join(" ")),
    };
    if p.poetry && p.test_extra.is_none() {
        let run = format!(
            "{pip} install poetry{tools}\n.venv/bin/poetry config virtualenvs.create false --local\n.venv/bin/poetry install --no-interaction"
        );
        return (
            run,
            "A Poetry project: Poetry installs it with its groups into the venv (no second venv)."
                .into(),
        );
    }
    let target = match &p.test_extra {
        Some((group, _)) => format!("-e '.[{group}]'"),
        None => "-e .".to_string(),
    };
    let mut why = match &p.test_extra {
        Some((group, _)) => {
            format!("The package with its `{group}` extra, where the project lists pytest.")
        }
        None => "The package as an editable install; the project lists no test extra.".to_string(),
    };
    if !missing.is_empty() {
        why.push_str(&format!(
            " {} added here: the project does not list them and the reports need them.",
            missing.join(" and ")
        ));
    }
    (format!("{pip} install {target}{tools}"), why)
}

fn pip_cache() -> Cache {
    Cache::new(
        "pip-{{ hash \"pyproject.toml\" \"setup.cfg\" \"setup.py\" \"requirements*.txt\" }}",
        &["~/.cache/pip"],
        "pip's downloads and built wheels, in the job's home where pip keeps them.",
    )
}

fn runnable(p: &Project) -> Option<Runnable> {
    let venv = "python3 -m venv \"$HOME/venv\" && \"$HOME/venv/bin/pip\" install -q --force-reinstall dist/*.whl";
    if let Some(script) = &p.script {
        return Some(Runnable {
            command: format!("{venv} && exec \"$HOME/venv/bin/{script}\""),
            why: format!(
                "The console script `{script}` ([project.scripts]): the release's wheel is \
                 installed into a venv in the environment's home (the release is read-only) and run."
            ),
        });
    }
    let module = p.main_module.as_ref()?;
    Some(Runnable {
        command: format!("{venv} && exec \"$HOME/venv/bin/python\" -m {module}"),
        why: format!(
            "`{module}` has a __main__.py: the release's wheel is installed into a venv in the \
             environment's home (the release is read-only) and run with `python -m {module}`."
        ),
    })
}

fn wheel_job() -> Job {
    Job {
        steps: vec![Step::new(
            "wheel",
            "python3 -m pip wheel --no-deps -w dist .",
            "The package as a wheel: the release keeps it, the environment installs it.",
        )],
        caches: vec![pip_cache()],
        artifacts: vec!["dist/*.whl".into()],
        ..Job::default()
    }
}
