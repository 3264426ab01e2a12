//! `slipway init`: a working `.slipway.yml` for the repository it stands in.
//! Each ecosystem has a module that looks at the project's own files (never
//! the network) and at which tools this machine has, and returns a [`Plan`];
//! `yaml` writes the plans with a comment on every choice.

mod java;
mod node;
mod plan;
mod python;
mod rust;
mod yaml;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use plan::Plan;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository to write the pipeline file for.
    #[arg(short = 'C', long = "dir", env = "SLIPWAY_DIR", default_value = ".")]
    dir: PathBuf,
    /// Print the file instead of writing it (to see what init would write
    /// where a `.slipway.yml` exists already).
    #[arg(long, alias = "print")]
    stdout: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: give the repository with -C DIR",
            dir.display()
        );
    }
    let plans = detect(dir)?;
    let text = yaml::render(&plans, &branch(dir));
    // What init writes must be what validate accepts; a failure here is a bug in init.
    if let Err(diagnostics) = slipway_spec::parse(&text) {
        let report = slipway_spec::render_all(".slipway.yml", &text, &diagnostics);
        bail!("slipway init wrote a file it cannot validate (please report this):\n{report}");
    }
    if args.stdout {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = dir.join(slipway_spec::DEFAULT_FILE);
    write_new(&path, &text)?;
    let kinds: Vec<&str> = plans.iter().map(|p| p.kind).collect();
    println!(
        "wrote {} for a {} project; check it with `slipway validate`, try it with `slipway run`",
        path.display(),
        kinds.join(" + ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Every project kind found at the top of `dir`.
fn detect(dir: &Path) -> anyhow::Result<Vec<Plan>> {
    let found = [
        rust::plan(dir)?,
        python::plan(dir)?,
        node::plan(dir)?,
        java::plan(dir)?,
    ];
    let plans: Vec<Plan> = found.into_iter().flatten().collect();
    if plans.is_empty() {
        bail!(
            "{} holds no Cargo.toml, pyproject.toml, setup.cfg, setup.py, package.json, pom.xml or \
             build.gradle(.kts): slipway init knows Rust, Python, Node and Java projects; for others, \
             write .slipway.yml by hand (the README's \"pipeline file\" section shows one)",
            dir.display()
        );
    }
    Ok(plans)
}

/// Writes the file only if none is there, so an existing pipeline is never lost.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists already and slipway init never overwrites it: see what init would write with \
             `slipway init --stdout` (add -C DIR for another directory), or move the file away first",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The branch checked out in `dir` (the one releases come from), else `main`.
fn branch(dir: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["symbolic-ref", "--quiet", "--short", "HEAD"])
        .current_dir(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if name.is_empty() { "main".into() } else { name }
        }
        _ => "main".into(),
    }
}

/// Whether `program` is on this machine's PATH (what the server's jobs get).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.metadata().is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// A project file's text, or `None` when it is absent.
fn read(dir: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A TOML project file parsed, with an error naming the file and the place.
fn read_toml(dir: &Path, name: &str) -> anyhow::Result<Option<toml::Table>> {
    let Some(text) = read(dir, name)? else {
        return Ok(None);
    };
    let table = text.parse::<toml::Table>().map_err(|e| {
        anyhow::anyhow!(
            "{} is not valid TOML, so slipway init cannot tell what the project is: {e}",
            dir.join(name).display()
        )
    })?;
    Ok(Some(table))
}

/// `major.minor` of a version such as `1.4.2` or `0.3.0-dev`.
fn version_prefix(version: &str) -> Option<String> {
    let mut parts = version.split('.');
    let major = parts.next()?.trim();
    let minor = parts.next()?;
    let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(major) && digits(&minor)).then(|| format!("{major}.{minor}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_keep_major_and_minor() {
        assert_eq!(super::version_prefix("1.4.2").as_deref(), Some("1.4"));
        assert_eq!(super::version_prefix("0.3.0-dev").as_deref(), Some("0.3"));
        assert_eq!(super::version_prefix("dynamic"), None);
    }
}
