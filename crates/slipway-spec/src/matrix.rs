//! `matrix:` on a job: one job per combination of the variables' values.
//!
//! The matrix is expanded here, while the file is read, so the runner, the
//! server, agents and `slipway run` all see the same plain jobs: each
//! combination is a [`Job`] with a name of its own (`test.3.11-sqlite`), the
//! combination's variables in its `env`, and a [`MatrixCell`] saying which job
//! of the file it came from. `needs: [test]` is rewritten to need every
//! combination of `test`.

use std::collections::{BTreeMap, HashSet};

use crate::diagnostic::Pos;
use crate::model::{Env, Job, JobName};
use crate::reader::{Reader, is_identifier, suggest};
use crate::template::{Template, safe_name};
use crate::yaml::{Node, Value};

/// Most combinations one matrix may have (after `exclude` and `include`).
pub const MAX_COMBINATIONS: usize = 64;
/// Most combinations the variables may multiply to before `exclude`: beyond
/// this the file is refused without listing them.
const MAX_PRODUCT: usize = 4096;

/// Which job of the file a job of an expanded matrix is, and with what values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixCell {
    /// The job as the file names it (`test`): what `needs` and the UI group by.
    pub job: JobName,
    /// This combination's variables, in the order the matrix lists them.
    pub values: Env,
}

impl MatrixCell {
    /// `test [PYTHON=3.11, DB=sqlite]`.
    pub fn title(&self) -> String {
        let values: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} [{}]", self.job, values.join(", "))
    }
}

/// A job's matrix as read: its combinations, in order.
#[derive(Debug)]
pub(crate) struct Matrix {
    pub pos: Pos,
    combinations: Vec<Env>,
}

/// The variables of a matrix with their values, in file order.
type Axes = Vec<(String, Vec<String>)>;

/// Reads `matrix: { VAR: [values…], exclude: [{…}], include: [{…}] }`.
pub(crate) fn read(r: &mut Reader, node: &Node, job: &JobName) -> Option<Matrix> {
    let what = format!("jobs.{job}.matrix");
    let before = r.diagnostics.len();
    let mut axes: Axes = Vec::new();
    let (mut exclude, mut include) = (None, None);
    for (key, k, v) in r.entries(node, &what) {
        match key {
            "exclude" => exclude = Some(v),
            "include" => include = Some(v),
            _ if variable_name(r, key, k.pos) => {
                if let Some(values) = axis(r, v, &format!("{what}.{key}")) {
                    axes.push((key.to_string(), values));
                }
            }
            _ => {}
        }
    }
    if r.diagnostics.len() > before {
        return None;
    }
    if axes.is_empty() && include.is_none() {
        r.error_with_help(
            node.pos,
            format!("`{what}` is empty"),
            "give at least one variable with its values, e.g. `PYTHON: [\"3.11\", \"3.12\"]`",
        );
        return None;
    }
    let product = axes
        .iter()
        .try_fold(1usize, |n, (_, values)| n.checked_mul(values.len()))
        .filter(|n| *n <= MAX_PRODUCT);
    let Some(_) = product else {
        r.error(
            node.pos,
            format!("`{what}` makes more than {MAX_PRODUCT} combinations; at most {MAX_COMBINATIONS} may run"),
        );
        return None;
    };
    let mut combinations = cartesian(&axes);
    if let Some(n) = exclude {
        apply_exclude(r, n, &what, &axes, &mut combinations);
    }
    if let Some(n) = include {
        apply_include(r, n, &what, &axes, &mut combinations);
    }
    if r.diagnostics.len() > before {
        return None;
    }
    check_count(r, node.pos, &what, combinations.len())?;
    Some(Matrix {
        pos: node.pos,
        combinations,
    })
}

fn check_count(r: &mut Reader, pos: Pos, what: &str, count: usize) -> Option<()> {
    if count == 0 {
        r.error_with_help(
            pos,
            format!("`{what}` excludes every combination"),
            "remove an `exclude` entry, or the matrix",
        );
        return None;
    }
    if count > MAX_COMBINATIONS {
        r.error_with_help(
            pos,
            format!("`{what}` makes {count} combinations; at most {MAX_COMBINATIONS} are allowed"),
            "drop values, or `exclude` combinations that add little",
        );
        return None;
    }
    Some(())
}

/// A matrix variable becomes an environment variable, so it needs such a name.
fn variable_name(r: &mut Reader, name: &str, pos: Pos) -> bool {
    if !is_identifier(name) {
        r.error_with_help(
            pos,
            format!("matrix variable `{name}` is not a valid variable name"),
            "use letters, digits and `_`, not starting with a digit (the steps get it as an environment variable)",
        );
        return false;
    }
    if name.starts_with("SLIPWAY_") {
        r.error_with_help(
            pos,
            format!("matrix variable `{name}` is reserved: variables starting with SLIPWAY_ are set by Slipway"),
            "choose another name",
        );
        return false;
    }
    true
}

/// One variable's values: a non-empty list of distinct strings, numbers or booleans.
fn axis(r: &mut Reader, node: &Node, what: &str) -> Option<Vec<String>> {
    let Value::Seq(items) = &node.value else {
        r.error_with_help(
            node.pos,
            format!("`{what}` must be a list of values, found {}", node.kind()),
            "write the values as a list, e.g. `[\"3.11\", \"3.12\"]`",
        );
        return None;
    };
    if items.is_empty() {
        r.error(
            node.pos,
            format!("`{what}` has no values; give at least one"),
        );
        return None;
    }
    let mut values: Vec<String> = Vec::new();
    for item in items {
        let value = scalar(r, item, what)?;
        if values.contains(&value) {
            r.error(item.pos, format!("`{what}` lists `{value}` twice"));
            return None;
        }
        let slug = safe_name(&value);
        if let Some(other) = values.iter().find(|v| safe_name(v) == slug) {
            r.error_with_help(
                item.pos,
                format!(
                    "`{what}` lists `{other}` and `{value}`, which are both `{slug}` in job names, cache keys and image tags"
                ),
                "change one of them so they differ in letters, digits, `.`, `_` or `-` (other characters become `_`)",
            );
            return None;
        }
        values.push(value);
    }
    Some(values)
}

/// A matrix value: any scalar but null, as its text (so `3.10` stays `3.10`).
fn scalar(r: &mut Reader, node: &Node, what: &str) -> Option<String> {
    match &node.value {
        Value::Scalar(s) if !node.is_null() => Some(s.text.clone()),
        _ => {
            r.error_with_help(
                node.pos,
                format!(
                    "a value of `{what}` is {}, not a string, number or boolean",
                    node.kind()
                ),
                "matrix values are single values; quote them if they look like something else",
            );
            None
        }
    }
}

/// Every combination, the first variable changing slowest.
fn cartesian(axes: &Axes) -> Vec<Env> {
    if axes.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Env> = vec![Vec::new()];
    for (name, values) in axes {
        out = out
            .iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((name.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    out
}

/// An `exclude`/`include` entry: variable → value, with the entry's position.
fn entry(r: &mut Reader, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
    if !matches!(node.value, Value::Map(_)) {
        r.error_with_help(
            node.pos,
            format!(
                "an entry of `{what}` must be a mapping, found {}",
                node.kind()
            ),
            "write `{ VAR: value, … }`",
        );
        return None;
    }
    let mut out = BTreeMap::new();
    for (key, k, v) in r.entries(node, what) {
        if variable_name(r, key, k.pos) {
            out.insert(key.to_string(), scalar(r, v, &format!("{what}.{key}"))?);
        }
    }
    Some(out)
}

fn entries<'a>(r: &mut Reader, node: &'a Node, what: &str) -> &'a [Node] {
    match &node.value {
        Value::Seq(items) => items,
        _ => {
            r.error(
                node.pos,
                format!(
                    "`{what}` must be a list of `{{ VAR: value }}` entries, found {}",
                    node.kind()
                ),
            );
            &[]
        }
    }
}

/// Drops every combination an entry matches (all the variables it names agree,
/// as in GitHub Actions); an entry matching nothing is a mistake and said so.
fn apply_exclude(r: &mut Reader, node: &Node, what: &str, axes: &Axes, combos: &mut Vec<Env>) {
    let what = format!("{what}.exclude");
    let names: Vec<&str> = axes.iter().map(|(n, _)| n.as_str()).collect();
    for item in entries(r, node, &what) {
        let Some(wanted) = entry(r, item, &what) else {
            continue;
        };
        if let Some(unknown) = wanted.keys().find(|k| !names.contains(&k.as_str())) {
            let help = match suggest(unknown, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("the matrix's variables: {}", names.join(", ")),
            };
            r.error_with_help(
                item.pos,
                format!("`{what}` names `{unknown}`, which is not a variable of the matrix"),
                help,
            );
            continue;
        }
        let matches = |c: &Env| c.iter().all(|(k, v)| wanted.get(k).is_none_or(|w| w == v));
        let before = combos.len();
        combos.retain(|c| !matches(c));
        if combos.len() == before {
            let takes: Vec<String> = axes
                .iter()
                .filter(|(n, _)| wanted.contains_key(n))
                .map(|(n, vs)| format!("{n} takes {}", vs.join(", ")))
                .collect();
            r.error_with_help(
                item.pos,
                format!("this entry of `{what}` matches no combination"),
                takes.join("; "),
            );
        }
    }
}

/// Adds each entry as one whole combination. Unlike GitHub Actions, an entry
/// cannot add variables to combinations already there: each names exactly the
/// matrix's variables (or, in a matrix of `include` alone, those of the first entry).
fn apply_include(r: &mut Reader, node: &Node, what: &str, axes: &Axes, combos: &mut Vec<Env>) {
    let what = format!("{what}.include");
    let mut names: Vec<String> = axes.iter().map(|(n, _)| n.clone()).collect();
    for item in entries(r, node, &what) {
        let Some(given) = entry(r, item, &what) else {
            continue;
        };
        if names.is_empty() {
            names = given.keys().cloned().collect();
        }
        let mut want: Vec<&String> = names.iter().collect();
        want.sort();
        if !given.keys().eq(want.iter().copied()) {
            r.error_with_help(
                item.pos,
                format!("an entry of `{what}` must give each of the matrix's variables, no more and no fewer"),
                format!("give {}; each entry is one whole combination", names.join(", ")),
            );
            continue;
        }
        let combo: Env = names
            .iter()
            .map(|n| (n.clone(), given[n].clone()))
            .collect();
        if combos.contains(&combo) {
            r.error_with_help(
                item.pos,
                format!("this entry of `{what}` is already a combination of the matrix"),
                "remove it",
            );
            continue;
        }
        combos.push(combo);
    }
}

/// The jobs a job with a matrix stands for, one per combination.
pub(crate) fn expand(r: &mut Reader, job: Job, matrix: Matrix) -> Vec<Job> {
    let variables: Vec<&str> = matrix.combinations[0]
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    if let Some((name, _)) = job
        .env
        .iter()
        .find(|(k, _)| variables.contains(&k.as_str()))
    {
        r.error_with_help(
            matrix.pos,
            format!(
                "`{name}` is both a variable of the matrix of job `{}` and in its `env`",
                job.name
            ),
            "remove it from `env`: each combination sets it",
        );
        return Vec::new();
    }
    let Some(names) = combination_names(r, &job, &matrix.combinations, matrix.pos) else {
        return Vec::new();
    };
    if !images::check(r, &job, &matrix.combinations) {
        return Vec::new();
    }
    let mut jobs = Vec::with_capacity(names.len());
    for (name, values) in names.into_iter().zip(matrix.combinations) {
        let mut one = job.clone();
        one.name = name;
        if !substitute(r, &mut one, &values, matrix.pos) {
            return Vec::new();
        }
        one.env.extend(values.iter().cloned());
        one.matrix = Some(MatrixCell {
            job: job.name.clone(),
            values,
        });
        jobs.push(one);
    }
    jobs
}

/// Names from the values (`test.3.11-sqlite`): each combination's name
/// depends on its own values alone, so adding or removing a value never
/// renames the others. Names too long or alike are refused, not renumbered.
fn combination_names(r: &mut Reader, job: &Job, combos: &[Env], pos: Pos) -> Option<Vec<JobName>> {
    let mut names: Vec<JobName> = Vec::with_capacity(combos.len());
    for (i, combo) in combos.iter().enumerate() {
        let slug: Vec<String> = combo.iter().map(|(_, v)| safe_name(v)).collect();
        let name = format!("{}.{}", job.name, slug.join("-"));
        let cell = |values: &Env| MatrixCell {
            job: job.name.clone(),
            values: values.clone(),
        };
        let Ok(parsed) = JobName::parse(&name) else {
            r.error_with_help(
                pos,
                format!(
                    "combination `{}` would be named `{name}` ({} characters); job names have at most {} characters",
                    cell(combo).title(),
                    name.len(),
                    JobName::MAX_LEN
                ),
                "shorten the job name or the values",
            );
            return None;
        };
        if let Some(j) = names.iter().position(|n| *n == parsed) {
            r.error_with_help(
                pos,
                format!(
                    "combinations `{}` and `{}` of job `{}` would both be named `{name}`",
                    cell(&combos[j]).title(),
                    cell(&combos[i]).title(),
                    job.name
                ),
                "change a value so the names differ: a combination is named from its values joined by `-`, characters other than letters, digits, `.`, `_` and `-` becoming `_`",
            );
            return None;
        }
        names.push(parsed);
    }
    Some(names)
}

/// Puts the combination's values into the job's cache keys and image tags.
fn substitute(r: &mut Reader, job: &mut Job, values: &Env, pos: Pos) -> bool {
    let mut templates: Vec<&mut Template> = job.caches.iter_mut().map(|c| &mut c.key).collect();
    if let Some(build) = job.image_build.as_mut() {
        templates.extend(build.tags.iter_mut().chain(build.push_tags.iter_mut()));
    }
    for template in templates {
        match template.with_matrix(values) {
            Ok(done) => *template = done,
            Err(name) => {
                let known: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
                r.error_with_help(
                    pos,
                    format!(
                        "`{template}` names `matrix.{name}`, which is not a variable of this matrix"
                    ),
                    format!("the matrix's variables: {}", known.join(", ")),
                );
                return false;
            }
        }
    }
    true
}

/// A job without a matrix may not name matrix variables in its templates.
pub(crate) fn refuse_matrix_names(r: &mut Reader, job: &Job) {
    let mut templates: Vec<&Template> = job.caches.iter().map(|c| &c.key).collect();
    if let Some(build) = &job.image_build {
        templates.extend(build.tags.iter().chain(&build.push_tags));
    }
    for template in templates {
        if let Some(name) = template.matrix_names().next() {
            r.error_with_help(
                job.pos,
                format!(
                    "job `{}` has no matrix, but `{template}` names `matrix.{name}`",
                    job.name
                ),
                format!(
                    "add `matrix:` with `{name}` to the job, or remove `{{{{ matrix.{name} }}}}`"
                ),
            );
        }
    }
}

/// Rewrites needs of a matrix job to need each of its combinations, keeping
/// the position of the need for messages. Names of jobs are unique by then.
pub(crate) fn resolve_needs(jobs: &mut [Job], needs_pos: &mut [Vec<Pos>]) {
    let mut groups: BTreeMap<JobName, Vec<JobName>> = BTreeMap::new();
    for job in jobs.iter() {
        if let Some(cell) = &job.matrix {
            groups
                .entry(cell.job.clone())
                .or_default()
                .push(job.name.clone());
        }
    }
    for (job, positions) in jobs.iter_mut().zip(needs_pos.iter_mut()) {
        let mut needs = Vec::new();
        let mut at = Vec::new();
        for (need, pos) in job.needs.drain(..).zip(positions.drain(..)) {
            match groups.get(&need) {
                Some(members) => {
                    needs.extend(members.iter().cloned());
                    at.extend(std::iter::repeat_n(pos, members.len()));
                }
                None => {
                    needs.push(need);
                    at.push(pos);
                }
            }
        }
        job.needs = needs;
        *positions = at;
    }
}

/// A combination's name may not be that of a job the file defines too.
pub(crate) fn check_names(r: &mut Reader, jobs: &[Job]) {
    let mut seen: HashSet<&JobName> = HashSet::new();
    for job in jobs {
        if !seen.insert(&job.name) {
            r.error_with_help(
                job.pos,
                format!(
                    "two jobs are named `{}` once the matrix is expanded",
                    job.name
                ),
                "rename the job, or change the matrix's values",
            );
        }
    }
}

mod images;
#[cfg(test)]
mod tests;
