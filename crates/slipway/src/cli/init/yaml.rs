//! Writes plans as a commented `.slipway.yml`. Text is assembled by hand
//! rather than serialised so that every choice keeps its comment beside it.

use super::plan::{Cache, Job, Plan, Reports, Step};

/// The default gate's conditions and what each needs to have a value.
const DEFAULT_GATE: &[(&str, Needs)] = &[
    ("tests_run >= 1", Needs::Junit),
    ("tests_failed == 0", Needs::Junit),
    ("tests_errored == 0", Needs::Junit),
    ("new_coverage >= 80", Needs::Coverage),
    ("new_issues{severity>=major} == 0", Needs::Issues),
];

#[derive(Clone, Copy)]
enum Needs {
    Junit,
    Coverage,
    Issues,
}

/// The whole file: the found projects, their jobs, the gate, the release
/// and (when something can run) a `dev` environment taking `branch`.
pub fn render(plans: &[Plan], branch: &str) -> String {
    let mut out = Out::default();
    header(&mut out, plans);
    env(&mut out, plans);
    out.line(0, "jobs:");
    let several = plans.len() > 1;
    for plan in plans {
        let name = |base: &str| match several {
            true => format!("{base}-{}", plan.kind),
            false => base.to_string(),
        };
        job(&mut out, &name("test"), &plan.test, None);
        if let Some(build) = &plan.build {
            job(
                &mut out,
                &name("build"),
                build,
                Some((&name("test"), branch)),
            );
        }
    }
    gate(&mut out, plans);
    release(&mut out, plans, branch);
    environment(&mut out, plans, branch);
    out.text
}

fn header(out: &mut Out, plans: &[Plan]) {
    out.comment(
        0,
        "Written by `slipway init`. Each choice says why in a comment like this one;",
    );
    out.comment(
        0,
        "change what does not fit and check the file with `slipway validate`.",
    );
    for line in plans.iter().flat_map(|p| &p.found) {
        out.comment(0, line);
    }
}

fn env(out: &mut Out, plans: &[Plan]) {
    let vars: Vec<&(String, String)> = plans.iter().flat_map(|p| &p.env).collect();
    if vars.is_empty() {
        return;
    }
    out.line(0, "env:");
    for (name, value) in vars {
        out.line(1, &format!("{name}: {}", scalar(value)));
    }
}

fn job(out: &mut Out, name: &str, job: &Job, after: Option<(&str, &str)>) {
    out.line(1, &format!("{name}:"));
    for note in &job.notes {
        out.comment(2, note);
    }
    if let Some((test, branch)) = after {
        out.comment(
            2,
            "Builds what the `dev` environment runs, after the tests passed,",
        );
        out.comment(
            2,
            &format!("on `{branch}` only: releases are made from it."),
        );
        out.line(2, &format!("needs: [{test}]"));
        out.line(2, &format!("branches: [{}]", scalar(branch)));
    }
    out.line(2, "steps:");
    for step in &job.steps {
        self::step(out, step);
    }
    caches(out, &job.caches);
    reports(out, &job.reports);
    if !job.artifacts.is_empty() {
        out.comment(
            2,
            "What the release keeps and the `dev` environment runs from.",
        );
        let paths: Vec<String> = job.artifacts.iter().map(|p| scalar(p)).collect();
        out.line(2, &format!("artifacts: [{}]", paths.join(", ")));
    }
}

fn step(out: &mut Out, step: &Step) {
    out.comment(3, &step.why);
    out.line(3, &format!("- name: {}", scalar(&step.name)));
    if step.run.contains('\n') {
        // YAML takes a block's indentation from its first non-blank line: a
        // script starting with spaces needs it stated (2 beyond `run:`'s).
        let first = step.run.lines().find(|l| !l.trim().is_empty());
        let indicator = match first {
            Some(l) if l.starts_with([' ', '\t']) => "2",
            _ => "",
        };
        out.line(4, &format!("run: |{indicator}"));
        for line in step.run.lines() {
            out.line(5, line);
        }
    } else {
        out.line(4, &format!("run: {}", scalar(&step.run)));
    }
}

fn caches(out: &mut Out, caches: &[Cache]) {
    if caches.is_empty() {
        return;
    }
    out.comment(
        2,
        "Caches: restored before the steps, saved after a miss. A `hash` over",
    );
    out.comment(
        2,
        "no file hashes nothing (the log says so), so a missing lockfile is fine.",
    );
    out.line(2, "cache:");
    for cache in caches {
        out.comment(3, &cache.why);
        out.line(3, &format!("- key: {}", scalar(&cache.key)));
        let paths: Vec<String> = cache.paths.iter().map(|p| scalar(p)).collect();
        out.line(4, &format!("paths: [{}]", paths.join(", ")));
    }
}

fn reports(out: &mut Out, reports: &Reports) {
    if !reports.any() {
        return;
    }
    out.comment(
        2,
        "Read after the steps, passed or failed, and judged by the gate below.",
    );
    out.line(2, "reports:");
    let all = [
        ("junit", &reports.junit),
        ("coverage", &reports.coverage),
        ("issues", &reports.issues),
    ];
    for (key, report) in all {
        if let Some(report) = report {
            out.comment(3, &report.why);
            out.line(3, &format!("{key}: {}", scalar(&report.glob)));
        }
    }
}

/// The default gate, written out, less the conditions some job's reports
/// cannot give a value (a missing measure fails a gate).
fn gate(out: &mut Out, plans: &[Plan]) {
    let judged: Vec<&Reports> = plans
        .iter()
        .map(|p| &p.test.reports)
        .filter(|r| r.any())
        .collect();
    if judged.is_empty() {
        return;
    }
    let measured = |needs: Needs| {
        judged.iter().all(|r| match needs {
            Needs::Junit => r.junit.is_some(),
            Needs::Coverage => r.coverage.is_some(),
            Needs::Issues => r.issues.is_some(),
        })
    };
    let (kept, dropped): (Vec<_>, Vec<_>) = DEFAULT_GATE.iter().partition(|(_, n)| measured(*n));
    out.comment(
        0,
        "Slipway's default gate, written out so it can be changed. New code is",
    );
    out.comment(
        0,
        "what the run's commits changed since the branch's last green run.",
    );
    if !dropped.is_empty() {
        let names: Vec<&str> = dropped.iter().map(|(c, _)| *c).collect();
        out.comment(
            0,
            &format!(
                "Left out, as no report above measures it: {}.",
                names.join(", ")
            ),
        );
    }
    out.line(0, "gate:");
    for (condition, _) in kept {
        out.line(1, &format!("- {}", scalar(condition)));
    }
}

fn release(out: &mut Out, plans: &[Plan], branch: &str) {
    let prefix = plans.iter().find_map(|p| p.version_prefix.as_deref());
    let version = match prefix {
        Some(p) => format!("{p}.{{{{ run.number }}}}"),
        None => "{{ run.number }}".to_string(),
    };
    out.comment(
        0,
        "A green run of the release branch becomes an immutable release.",
    );
    match prefix {
        Some(p) => out.comment(
            0,
            &format!("`{p}` is the project's own version; the run number counts on."),
        ),
        None => out.comment(
            0,
            "The project states no version: releases are numbered by run.",
        ),
    }
    out.line(0, "release:");
    out.line(1, &format!("version: {}", scalar(&version)));
    if !plans.iter().any(|p| p.run.is_some()) {
        out.comment(
            1,
            "No environment takes releases, so name the branch that makes them.",
        );
        out.line(1, &format!("branches: [{}]", scalar(branch)));
    }
}

fn environment(out: &mut Out, plans: &[Plan], branch: &str) {
    let Some(run) = plans.iter().find_map(|p| p.run.as_ref()) else {
        return;
    };
    out.line(0, "environments:");
    out.line(1, "dev:");
    out.comment(
        2,
        &format!("Takes each release of `{branch}`, deployed when asked"),
    );
    out.comment(
        2,
        "(`slipway deploy dev VERSION`); write `deploy: auto` to deploy each one at once.",
    );
    out.line(2, &format!("branch: {}", scalar(branch)));
    out.line(2, "deploy: manual");
    out.comment(2, &run.why);
    out.comment(
        2,
        "It runs in the release's files on this machine, with $PORT set.",
    );
    out.line(2, "target:");
    out.line(3, "local:");
    out.line(4, &format!("command: {}", scalar(&run.command)));
    out.comment(
        2,
        "Healthy when GET / answers 2xx on $PORT; for a program that serves no",
    );
    out.comment(
        2,
        "HTTP, use `health: { command: \"…\", timeout: 30s }` instead.",
    );
    out.line(2, "health: { http: /, timeout: 30s }");
}

/// A YAML scalar: plain when YAML reads it back as the same string, else
/// double-quoted (a JSON string is a valid YAML one).
pub fn scalar(s: &str) -> String {
    let plain_char = |c: char| c.is_ascii_alphanumeric() || "_./-+=".contains(c) || c == ' ';
    let reserved = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"];
    let plain = !s.is_empty()
        && s.chars().all(plain_char)
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '.' || c == '/' || c == '_')
        && !s.ends_with(' ')
        && !reserved.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

#[derive(Default)]
struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.text.push_str("  ");
        }
        self.text.push_str(text);
        self.text.push('\n');
    }

    /// A comment, wrapped so that no line runs past 92 columns.
    fn comment(&mut self, indent: usize, text: &str) {
        let width = 90usize.saturating_sub(indent * 2).max(40);
        let mut line = String::new();
        for word in text.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                self.line(indent, &format!("# {line}"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            self.line(indent, &format!("# {line}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Out, Step, scalar, step};

    /// The step as `init` writes it, read back by Slipway's own parser.
    fn read_back(run: &str) -> String {
        let mut out = Out::default();
        step(&mut out, &Step::new("s", run, "why"));
        let file = format!("jobs:\n  t:\n    steps:\n{}", out.text);
        let pipeline = slipway_spec::parse(&file)
            .unwrap_or_else(|d| panic!("{}", slipway_spec::render_all("init", &file, &d)));
        pipeline.jobs[0].steps[0].run.clone()
    }

    #[test]
    fn scripts_of_several_lines_read_back_unchanged_even_starting_with_spaces() {
        for run in [
            "  indented first\nsecond",
            "\tindented by a tab\nsecond",
            "first\n  indented second",
            "\n  after a blank line\nlast",
        ] {
            assert_eq!(read_back(run), format!("{run}\n"), "{run:?}");
        }
    }

    #[test]
    fn scalars_are_plain_only_when_yaml_reads_them_back_unchanged() {
        assert_eq!(scalar("cargo build --release"), "cargo build --release");
        assert_eq!(scalar("~/.npm"), "\"~/.npm\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("0.1"), "\"0.1\"");
        assert_eq!(scalar("x-{{ hash \"a\" }}"), "\"x-{{ hash \\\"a\\\" }}\"");
    }
}
