//! The shape of `.slipway.yml`: which keys exist, what each must hold, and the
//! checks that span several jobs (`needs`, cycles).

use globset::{GlobBuilder, GlobMatcher};

use crate::dag;
use crate::diagnostic::Pos;
use crate::model::{
    BranchFilter, Cache, Env, ImageBuild, Job, JobName, NewCodeReference, Pipeline, Reports, Step,
};
use crate::reader::{Fields, Reader, is_identifier};
use crate::template::Template;
use crate::yaml::{Node, Value};

const PIPELINE_KEYS: &[&str] = &[
    "env",
    "jobs",
    "gate",
    "new_code",
    "debt_minutes",
    "release",
    "environments",
    "checkout",
];
const SEVERITIES: &[&str] = &["info", "minor", "major", "critical", "blocker"];
const NEW_CODE_KEYS: &[&str] = &["reference", "branch", "days", "lenient_below"];
const REPORT_KEYS: &[&str] = &["junit", "coverage", "issues"];
const JOB_KEYS: &[&str] = &[
    "steps",
    "needs",
    "env",
    "image",
    "timeout",
    "workdir",
    "branches",
    "artifacts",
    "cache",
    "retry",
    "allow_failure",
    "secrets",
    "image_build",
    "reports",
    "labels",
    "checkout",
    "matrix",
    "services",
];
const STEP_KEYS: &[&str] = &["name", "run", "env"];
const CACHE_KEYS: &[&str] = &["key", "paths"];
const ARTIFACT_KEYS: &[&str] = &["paths"];
const BRANCH_KEYS: &[&str] = &["only", "except"];
const IMAGE_BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "tags",
    "build_args",
    "push",
    "push_tags",
];
const MAX_JOBS: usize = 1000;
const MAX_RETRY: u32 = 10;

/// Reads the whole pipeline; `None` when anything was wrong (see the reader's diagnostics).
pub fn pipeline(r: &mut Reader, root: &Node) -> Option<Pipeline> {
    let top = r.fields(root, "pipeline", PIPELINE_KEYS)?;
    let env = top.get("env").map(|n| r.env(n, "env")).unwrap_or_default();
    let Some(jobs_node) = top.get("jobs") else {
        r.error_with_help(
            root.pos,
            "the pipeline has no `jobs`",
            "add a `jobs:` mapping with at least one job",
        );
        return None;
    };
    let gate = match top.get("gate") {
        Some(node) => gate(r, node),
        None => slipway_quality::DEFAULT_GATE
            .iter()
            .map(|c| c.to_string())
            .collect(),
    };
    let (reference, lenient_below) = top
        .get("new_code")
        .map(|n| new_code(r, n))
        .unwrap_or_default();
    let debt_minutes = top.get("debt_minutes").and_then(|n| debt_minutes(r, n));
    let mut jobs = jobs(r, jobs_node);
    crate::checkout::default_for(r, top.get("checkout"), &mut jobs);
    for reports in jobs.iter_mut().filter_map(|j| j.reports.as_mut()) {
        reports.debt_minutes = debt_minutes;
        reports.gate = gate.clone();
        reports.new_code = reference.clone();
        reports.lenient_below = lenient_below;
    }
    let release = crate::deploy::release(r, top.get("release"));
    let environments = crate::deploy::environments(r, top.get("environments"));
    if r.diagnostics.is_empty() {
        Some(Pipeline {
            env,
            jobs,
            release,
            environments,
        })
    } else {
        None
    }
}

fn jobs(r: &mut Reader, node: &Node) -> Vec<Job> {
    let entries = r.entries(node, "jobs");
    if entries.is_empty() && matches!(node.value, Value::Map(_)) {
        r.error(node.pos, "`jobs` is empty; define at least one job");
    }
    if entries.len() > MAX_JOBS {
        r.error(
            node.pos,
            format!("{} jobs; at most {MAX_JOBS} are allowed", entries.len()),
        );
        return Vec::new();
    }
    let mut jobs = Vec::new();
    let mut needs_at = Vec::new();
    for (name, key, value) in entries {
        let Ok(name) = JobName::parse(name).map_err(|e| r.error(key.pos, e)) else {
            continue;
        };
        let Some((job, needs, matrix)) = job(r, name, key.pos, value) else {
            continue;
        };
        let expanded = match matrix {
            Some(Some(m)) => crate::matrix::expand(r, job, m),
            Some(None) => Vec::new(),
            None => {
                crate::matrix::refuse_matrix_names(r, &job);
                vec![job]
            }
        };
        needs_at.extend(std::iter::repeat_n(needs, expanded.len()));
        jobs.extend(expanded);
    }
    if jobs.len() > MAX_JOBS {
        r.error(
            node.pos,
            format!(
                "{} jobs once matrices are expanded; at most {MAX_JOBS} are allowed",
                jobs.len()
            ),
        );
        return Vec::new();
    }
    crate::matrix::check_names(r, &jobs);
    crate::matrix::resolve_needs(&mut jobs, &mut needs_at);
    dag::check(r, &jobs, &needs_at);
    jobs
}

/// A job, the positions of its `needs`, and its matrix: `None` without one,
/// `Some(None)` when it is written but wrong.
type ReadJob = (Job, Vec<Pos>, Option<Option<crate::matrix::Matrix>>);

fn job(r: &mut Reader, name: JobName, pos: Pos, node: &Node) -> Option<ReadJob> {
    let what = format!("jobs.{name}");
    let f = r.fields(node, &what, JOB_KEYS)?;
    let matrix = f.get("matrix").map(|n| crate::matrix::read(r, n, &name));
    let steps = job_steps(r, &f, &name, pos, &what);
    let image_build = f.get("image_build").and_then(|n| image_build(r, n, &what));
    let (needs, needs_pos) = job_needs(r, &f, &what);
    let job = Job {
        pos,
        steps,
        needs,
        env: f
            .get("env")
            .map(|n| r.env(n, &format!("{what}.env")))
            .unwrap_or_default(),
        image: f
            .get("image")
            .and_then(|n| r.text(n, &format!("{what}.image"))),
        timeout: f
            .get("timeout")
            .and_then(|n| r.duration(n, &format!("{what}.timeout"))),
        workdir: f
            .get("workdir")
            .and_then(|n| relative_path(r, n, &format!("{what}.workdir"))),
        branches: f
            .get("branches")
            .map(|n| branches(r, n, &what))
            .unwrap_or_default(),
        artifacts: f
            .get("artifacts")
            .map(|n| artifacts(r, n, &what))
            .unwrap_or_default(),
        caches: f
            .get("cache")
            .map(|n| caches(r, n, &what))
            .unwrap_or_default(),
        retry: f
            .get("retry")
            .and_then(|n| r.count(n, &format!("{what}.retry"), MAX_RETRY))
            .unwrap_or(0),
        allow_failure: f
            .get("allow_failure")
            .and_then(|n| r.bool(n, &format!("{what}.allow_failure")))
            .unwrap_or(false),
        labels: f
            .get("labels")
            .map(|n| labels(r, n, &what))
            .unwrap_or_default(),
        secrets: f
            .get("secrets")
            .map(|n| secrets(r, n, &what))
            .unwrap_or_default(),
        image_build,
        reports: f.get("reports").and_then(|n| reports(r, n, &what)),
        checkout: f
            .get("checkout")
            .and_then(|n| crate::checkout::read(r, n, &format!("{what}.checkout"))),
        matrix: None,
        services: f
            .get("services")
            .map(|n| crate::services::read(r, n, &what))
            .unwrap_or_default(),
        name,
    };
    crate::services::check(r, &job, &what, matrix.is_some());
    Some((job, needs_pos, matrix))
}

/// The job's steps; a job with neither steps nor an image build is reported.
fn job_steps(r: &mut Reader, f: &Fields, name: &JobName, pos: Pos, what: &str) -> Vec<Step> {
    let steps = f
        .get("steps")
        .map(|n| steps(r, n, what))
        .unwrap_or_default();
    // Steps of the wrong type are already reported by `steps`; saying "no steps"
    // as well would send the user looking for a missing key that is there.
    let steps_written = f.get("steps").is_some_and(|n| {
        !n.is_null() && !matches!(&n.value, Value::Seq(items) if items.is_empty())
    });
    if !steps_written && f.get("image_build").is_none() {
        r.error_with_help(
            pos,
            format!("job `{name}` has no steps"),
            "add `steps:` with at least one `- run: COMMAND`, or an `image_build:`",
        );
    }
    steps
}

/// The jobs a job's `needs:` names, and where each is written.
fn job_needs(r: &mut Reader, f: &Fields, what: &str) -> (Vec<JobName>, Vec<Pos>) {
    let needs: Vec<(String, Pos)> = f
        .get("needs")
        .map(|n| r.strings(n, &format!("{what}.needs")))
        .unwrap_or_default();
    needs
        .into_iter()
        .filter_map(|(n, p)| {
            JobName::parse(&n)
                .map_err(|e| r.error(p, e))
                .ok()
                .map(|n| (n, p))
        })
        .unzip()
}

/// `reports: { junit: GLOB, coverage: [GLOB, …], issues: GLOB }`
fn reports(r: &mut Reader, node: &Node, job: &str) -> Option<Reports> {
    let what = format!("{job}.reports");
    let f = r.fields(node, &what, REPORT_KEYS)?;
    let mut list = |key: &str| {
        f.get(key)
            .map(|n| glob_list(r, n, &format!("{what}.{key}")))
            .unwrap_or_default()
    };
    Some(Reports {
        junit: list("junit"),
        coverage: list("coverage"),
        issues: list("issues"),
        ..Reports::default()
    })
}

/// `debt_minutes: { major: 15, minor: 3 }` over the defaults.
fn debt_minutes(r: &mut Reader, node: &Node) -> Option<[u64; 5]> {
    let f = r.fields(node, "debt_minutes", SEVERITIES)?;
    let mut minutes = slipway_quality::issues::DEFAULT_DEBT_MINUTES;
    for (i, severity) in SEVERITIES.iter().enumerate() {
        if let Some(n) = f.get(severity) {
            minutes[i] = u64::from(r.count(n, &format!("debt_minutes.{severity}"), 100_000)?);
        }
    }
    Some(minutes)
}

/// `new_code: { reference: previous_success }`, `{ branch: main }` or `{ days: 30 }`,
/// with `lenient_below: 20` to skip coverage conditions on small changes.
fn new_code(r: &mut Reader, node: &Node) -> (NewCodeReference, Option<u64>) {
    let Some(f) = r.fields(node, "new_code", NEW_CODE_KEYS) else {
        return Default::default();
    };
    let lenient_below = f
        .get("lenient_below")
        .and_then(|n| r.count(n, "new_code.lenient_below", 100_000))
        .map(u64::from);
    let choices = ["reference", "branch", "days"]
        .iter()
        .filter(|k| f.get(k).is_some())
        .count();
    if choices > 1 {
        r.error(
            f.pos,
            "`new_code` takes one of `reference`, `branch` or `days`",
        );
    }
    let reference = if let Some(n) = f.get("branch") {
        r.text(n, "new_code.branch")
            .map(NewCodeReference::Branch)
            .unwrap_or_default()
    } else if let Some(n) = f.get("days") {
        match r.count(n, "new_code.days", 3650) {
            Some(0) | None => {
                r.error(n.pos, "`new_code.days` must be between 1 and 3650");
                NewCodeReference::default()
            }
            Some(d) => NewCodeReference::Days(d),
        }
    } else if let Some(n) = f.get("reference") {
        match r.text(n, "new_code.reference").as_deref() {
            Some("previous_success") | None => NewCodeReference::PreviousSuccess,
            Some(other) => {
                r.error_with_help(
                    n.pos,
                    format!("`new_code.reference` is `{other}`"),
                    "use previous_success, or give `branch: NAME` or `days: N` instead",
                );
                NewCodeReference::default()
            }
        }
    } else {
        NewCodeReference::default()
    };
    (reference, lenient_below)
}

/// `gate: ["new_coverage >= 80", …]`: each condition checked here, with its position.
fn gate(r: &mut Reader, node: &Node) -> Vec<String> {
    let mut conditions = Vec::new();
    if matches!(&node.value, Value::Seq(items) if items.is_empty()) {
        r.error_with_help(
            node.pos,
            "`gate` is empty, and a gate that checks nothing always passes",
            "list conditions such as `new_coverage >= 80`, or remove `gate:` for the default gate",
        );
    }
    for (text, pos) in r.strings(node, "gate") {
        match slipway_quality::parse_condition(&text) {
            Ok(_) => conditions.push(text),
            Err(e) => r.error(pos, e),
        }
    }
    conditions
}

fn steps(r: &mut Reader, node: &Node, job: &str) -> Vec<Step> {
    let what = format!("{job}.steps");
    let Value::Seq(items) = &node.value else {
        if !node.is_null() {
            r.error(
                node.pos,
                format!("`{what}` must be a list of steps, found {}", node.kind()),
            );
        }
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| step(r, item, &what))
        .collect()
}

/// `- run: make test` with optional `name` and `env`, or just `- make test`.
fn step(r: &mut Reader, node: &Node, what: &str) -> Option<Step> {
    if let Value::Scalar(_) = node.value {
        let run = r.text(node, what)?;
        return Some(Step {
            name: None,
            run,
            env: Env::new(),
        });
    }
    let f = r.fields(node, what, STEP_KEYS)?;
    let Some(run) = f.get("run") else {
        r.error_with_help(
            node.pos,
            format!("a step of `{what}` has no `run`"),
            "add `run: COMMAND`",
        );
        return None;
    };
    Some(Step {
        run: r.text(run, &format!("{what}.run"))?,
        name: f
            .get("name")
            .and_then(|n| r.text(n, &format!("{what}.name"))),
        env: f
            .get("env")
            .map(|n| r.env(n, &format!("{what}.env")))
            .unwrap_or_default(),
    })
}

/// A path inside the workspace: relative and never climbing out of it.
fn relative_path(r: &mut Reader, node: &Node, what: &str) -> Option<String> {
    let path = r.text(node, what)?;
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        r.error_with_help(
            node.pos,
            format!("`{what}` is `{path}`, which leaves the workspace"),
            "use a path relative to the repository root, without `..`",
        );
        return None;
    }
    Some(path)
}

fn glob_list(r: &mut Reader, node: &Node, what: &str) -> Vec<String> {
    let mut globs = Vec::new();
    for (pattern, pos) in r.strings(node, what) {
        let invalid_path = pattern.starts_with('/') || pattern.split('/').any(|c| c == "..");
        if invalid_path {
            r.error_with_help(
                pos,
                format!("`{pattern}` leaves the workspace"),
                "use a path relative to the repository root, without `..`",
            );
        } else if let Err(e) = GlobBuilder::new(&pattern).literal_separator(true).build() {
            r.error(
                pos,
                format!("`{pattern}` is not a valid glob: {}", e.kind()),
            );
        } else {
            globs.push(pattern);
        }
    }
    globs
}

/// `artifacts: [a, b/**]` or `artifacts: { paths: [...] }`.
fn artifacts(r: &mut Reader, node: &Node, job: &str) -> Vec<String> {
    let what = format!("{job}.artifacts");
    if let Value::Map(_) = node.value {
        let f = r.fields(node, &what, ARTIFACT_KEYS);
        return match f.as_ref().and_then(|f| f.get("paths")) {
            Some(paths) => glob_list(r, paths, &format!("{what}.paths")),
            None => {
                r.error(node.pos, format!("`{what}` needs `paths`"));
                Vec::new()
            }
        };
    }
    glob_list(r, node, &what)
}

/// One cache (`{key, paths}`) or a list of them.
fn caches(r: &mut Reader, node: &Node, job: &str) -> Vec<Cache> {
    let what = format!("{job}.cache");
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(|n| cache(r, n, &what)).collect(),
        _ => cache(r, node, &what).into_iter().collect(),
    }
}

fn cache(r: &mut Reader, node: &Node, what: &str) -> Option<Cache> {
    let f = r.fields(node, what, CACHE_KEYS)?;
    let key = required(r, &f, "key", what).and_then(|n| cache_key(r, n, what));
    let paths = required(r, &f, "paths", what).map(|n| cache_paths(r, n, &format!("{what}.paths")));
    Some(Cache {
        key: key?,
        paths: paths?,
    })
}

/// Cache paths: globs in the workspace, or under the job's home as `~/…`
/// (`~/.npm`, `~/.cargo/registry`), where tools keep their downloads.
fn cache_paths(r: &mut Reader, node: &Node, what: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (pattern, pos) in r.strings(node, what) {
        let in_home = pattern.strip_prefix("~/");
        let rest = in_home.unwrap_or(&pattern);
        let escapes = rest.starts_with('/') || rest.split('/').any(|c| c == "..");
        if pattern.starts_with('~') && in_home.is_none_or(str::is_empty) {
            r.error_with_help(
                pos,
                format!("`{pattern}` is not a path a cache can keep"),
                "name something inside the job's home, e.g. `~/.npm`; `~` alone and `~user` are not allowed",
            );
        } else if escapes {
            r.error_with_help(
                pos,
                format!("`{pattern}` leaves the workspace: a cache can never save it"),
                "use a path relative to the repository root (or `~/…` for the job's home), without `..`",
            );
        } else if reaches_state_dir(rest) {
            r.error_with_help(
                pos,
                format!("`{pattern}` matches `.slipway`, Slipway's own directory; caches cannot keep it"),
                "name the dot directories you mean (e.g. `.cache`); `*` is fine: `.slipway` is always left out",
            );
        } else if let Err(e) = GlobBuilder::new(rest).literal_separator(true).build() {
            r.error(
                pos,
                format!("`{pattern}` is not a valid glob: {}", e.kind()),
            );
        } else {
            paths.push(pattern);
        }
    }
    paths
}

/// Whether a cache path's first component is aimed at `.slipway`: it
/// matches that name, and not the same name without the dot (`*` matches
/// both, and is kept: the runner always leaves `.slipway` out).
fn reaches_state_dir(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    GlobBuilder::new(first)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .is_ok_and(|m| m.is_match(".slipway") && !m.is_match("slipway"))
}

fn required<'a>(r: &mut Reader, f: &Fields<'a>, key: &str, what: &str) -> Option<&'a Node> {
    let node = f.get(key);
    if node.is_none() {
        r.error(f.pos, format!("`{what}` needs `{key}`"));
    }
    node
}

/// A cache key names a directory: outside `{{ }}` only `A-Z a-z 0-9 . _ -`.
fn cache_key(r: &mut Reader, node: &Node, what: &str) -> Option<Template> {
    let what = format!("{what}.key");
    let template = job_template(r, node, &what)?;
    if let Some((offset, c)) = bad_key_char(&template.source) {
        let shown = if c.is_whitespace() {
            "whitespace".to_string()
        } else {
            format!("`{c}`")
        };
        r.error_with_help(
            node.pos.right(node.text_offset() + offset),
            format!("invalid cache key `{}`: {shown} is not allowed", template.source),
            "cache keys use letters, digits, `.`, `_` and `-`, plus {{ hash \"FILE\" }}, {{ branch }}, {{ job }}, {{ matrix.NAME }}",
        );
        return None;
    }
    Some(template)
}

/// The first character outside `{{ }}` a cache key may not hold, with its character
/// offset. Searched in the source rather than in the template's parts so the offset
/// is the character's own, not that of the same character inside an expression
/// (`{{ hash "a/b" }}/x` must point at the second `/`).
fn bad_key_char(source: &str) -> Option<(usize, char)> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut offset = 0;
    let mut rest = source;
    loop {
        let text_end = rest.find("{{").unwrap_or(rest.len());
        let text = &rest[..text_end];
        if let Some((i, c)) = text.chars().enumerate().find(|&(_, c)| !allowed(c)) {
            return Some((offset + i, c));
        }
        // The template parsed, so every `{{` has its `}}`.
        let expr_end = rest[text_end..]
            .find("}}")
            .map_or(rest.len(), |e| text_end + e + 2);
        if expr_end == text_end {
            return None;
        }
        offset += rest[..expr_end].chars().count();
        rest = &rest[expr_end..];
    }
}

/// A template outside a job: it has no matrix whose variables it could name.
pub(crate) fn template(r: &mut Reader, node: &Node, what: &str) -> Option<Template> {
    let template = job_template(r, node, what)?;
    if let Some(name) = template.matrix_names().next() {
        r.error(
            node.pos,
            format!(
                "`{what}` cannot name `matrix.{name}`: only a job's cache keys and image tags can"
            ),
        );
        return None;
    }
    Some(template)
}

/// A template of a job, which may name its matrix's variables (`matrix.NAME`).
fn job_template(r: &mut Reader, node: &Node, what: &str) -> Option<Template> {
    let text = r.text(node, what)?;
    match Template::parse(&text) {
        Ok(t) => Some(t),
        Err(e) => {
            r.error(
                node.pos.right(node.text_offset() + e.offset),
                format!("invalid template in `{what}`: {}", e.message),
            );
            None
        }
    }
}

/// `branches: [main, release/*]` (only these) or `{ only: [...], except: [...] }`.
fn branches(r: &mut Reader, node: &Node, job: &str) -> BranchFilter {
    let what = format!("{job}.branches");
    if let Value::Map(_) = node.value {
        let Some(f) = r.fields(node, &what, BRANCH_KEYS) else {
            return BranchFilter::default();
        };
        return BranchFilter {
            only: f
                .get("only")
                .map(|n| patterns(r, n, &format!("{what}.only")))
                .unwrap_or_default(),
            except: f
                .get("except")
                .map(|n| patterns(r, n, &format!("{what}.except")))
                .unwrap_or_default(),
        };
    }
    BranchFilter {
        only: patterns(r, node, &what),
        except: Vec::new(),
    }
}

fn patterns(r: &mut Reader, node: &Node, what: &str) -> Vec<GlobMatcher> {
    r.strings(node, what)
        .into_iter()
        .filter_map(
            |(p, pos)| match GlobBuilder::new(&p).literal_separator(true).build() {
                Ok(g) => Some(g.compile_matcher()),
                Err(e) => {
                    r.error(
                        pos,
                        format!("`{p}` is not a valid branch pattern: {}", e.kind()),
                    );
                    None
                }
            },
        )
        .collect()
}

fn secrets(r: &mut Reader, node: &Node, job: &str) -> Vec<String> {
    let what = format!("{job}.secrets");
    let mut names: Vec<String> = Vec::new();
    for (name, pos) in r.strings(node, &what) {
        if !is_identifier(&name) {
            r.error(
                pos,
                format!("secret name `{name}` is not a valid variable name"),
            );
        } else if names.contains(&name) {
            r.error(pos, format!("secret `{name}` is listed twice"));
        } else {
            names.push(name);
        }
    }
    names
}

/// Labels a worker must have to run the job (`[docker, gpu]`).
fn labels(r: &mut Reader, node: &Node, job: &str) -> Vec<String> {
    let what = format!("{job}.labels");
    let mut labels: Vec<String> = Vec::new();
    for (label, pos) in r.strings(node, &what) {
        let valid = label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            r.error(
                pos,
                format!("label `{label}` may use letters, digits, `-`, `_` and `.` only"),
            );
        } else if !labels.contains(&label) {
            labels.push(label);
        }
    }
    labels
}

fn image_build(r: &mut Reader, node: &Node, job: &str) -> Option<ImageBuild> {
    let what = format!("{job}.image_build");
    let f = r.fields(node, &what, IMAGE_BUILD_KEYS)?;
    let push = f
        .get("push")
        .and_then(|n| push_target(r, n, &format!("{what}.push")));
    // With `push`, local names are optional: the pushed names serve.
    let tags = match f.get("tags") {
        Some(node) => template_list(r, node, &format!("{what}.tags"))?,
        None if f.get("push").is_some() => Vec::new(),
        None => {
            required(r, &f, "tags", &what);
            return None;
        }
    };
    let push_tags = match f.get("push_tags") {
        Some(node) => template_list(r, node, &format!("{what}.push_tags"))?,
        None => ["{{ run.number }}", "{{ commit.short }}"]
            .iter()
            .filter_map(|t| Template::parse(t).ok())
            .collect(),
    };
    Some(ImageBuild {
        context: f
            .get("context")
            .and_then(|n| relative_path(r, n, &format!("{what}.context")))
            .unwrap_or_else(|| ".".into()),
        dockerfile: f
            .get("dockerfile")
            .and_then(|n| relative_path(r, n, &format!("{what}.dockerfile")))
            .unwrap_or_else(|| "Dockerfile".into()),
        build_args: f
            .get("build_args")
            .map(|n| r.env(n, &format!("{what}.build_args")))
            .unwrap_or_default(),
        tags,
        push,
        push_tags,
    })
}

/// One template or a list of them; at least one.
fn template_list(r: &mut Reader, node: &Node, what: &str) -> Option<Vec<Template>> {
    let list: Vec<Template> = match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(|n| job_template(r, n, what))
            .collect(),
        _ => job_template(r, node, what).into_iter().collect(),
    };
    if list.is_empty() {
        r.error(node.pos, format!("`{what}` needs at least one tag"));
        return None;
    }
    Some(list)
}

/// `REPOSITORY/IMAGE`: lowercase path components, at least two, each
/// starting and ending with a letter or digit (the registry's own rule).
fn push_target(r: &mut Reader, node: &Node, what: &str) -> Option<String> {
    let target = r.text(node, what)?;
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    };
    if target.split('/').count() < 2 || !target.split('/').all(component_ok) {
        r.error_with_help(
            node.pos,
            format!("`{what}` is `{target}`, which is not REPOSITORY/IMAGE"),
            "name a repository of the Slipway registry and an image, in lowercase: `push: ci/web`",
        );
        return None;
    }
    Some(target)
}
