//! A matrix job that builds an image: its combinations run at once, so each
//! must tag and push names of its own, and a value put into an image name or
//! tag must be valid there.

use super::MatrixCell;
use crate::model::{Env, Job};
use crate::reader::Reader;
use crate::template::{Part, Template, safe_name};

/// Where a template's names go: local image names (`app:tag`) or tags pushed
/// to `push` (`tag` alone).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Local,
    Pushed,
}

/// Checks the job's `image_build` against every combination; false if refused.
pub(super) fn check(r: &mut Reader, job: &Job, combos: &[Env]) -> bool {
    let Some(build) = &job.image_build else {
        return true;
    };
    let mut templates: Vec<(Kind, &Template)> =
        build.tags.iter().map(|t| (Kind::Local, t)).collect();
    // With `push` and no `tags`, the pushed tags name the local image too.
    if build.push.is_some() {
        templates.extend(build.push_tags.iter().map(|t| (Kind::Pushed, t)));
    }
    templates
        .into_iter()
        .all(|(kind, t)| values_fit(r, job, kind, t, combos) && distinct(r, job, kind, t, combos))
}

/// Each matrix value the template names is valid where it lands.
fn values_fit(r: &mut Reader, job: &Job, kind: Kind, template: &Template, combos: &[Env]) -> bool {
    // The text before each part: `:` after the last `/` starts a local name's tag.
    let mut before = String::new();
    for part in &template.parts {
        let Part::Matrix(name) = part else {
            match part {
                Part::Text(text) => before.push_str(text),
                _ => before.push('x'),
            }
            continue;
        };
        let in_tag =
            kind == Kind::Pushed || before.rsplit('/').next().is_some_and(|c| c.contains(':'));
        let at_start = if kind == Kind::Pushed {
            before.is_empty()
        } else {
            before.ends_with(':')
        };
        for combo in combos {
            let Some((_, value)) = combo.iter().find(|(n, _)| n == name) else {
                continue;
            };
            let slug = safe_name(value);
            let problem = if in_tag {
                tag_problem(&slug, at_start)
            } else {
                name_problem(&slug)
            };
            if let Some(problem) = problem {
                refuse_value(r, job, (name, value, &slug), template, problem);
                return false;
            }
        }
        before.push('x');
    }
    true
}

fn tag_problem(slug: &str, at_start: bool) -> Option<&'static str> {
    if at_start && !slug.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return Some("an image tag starts with a letter, digit or `_`");
    }
    (slug.len() > 128).then_some("an image tag has at most 128 characters")
}

fn name_problem(slug: &str) -> Option<&'static str> {
    let chars_ok = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    let ends_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    let ok = chars_ok
        && ends_ok(slug.as_bytes().first())
        && ends_ok(slug.as_bytes().last())
        && !slug.contains("..");
    (!ok).then_some(
        "an image name takes lowercase letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit, without `..`",
    )
}

fn refuse_value(
    r: &mut Reader,
    job: &Job,
    value: (&str, &str, &str),
    template: &Template,
    problem: &str,
) {
    let (name, value, slug) = value;
    r.error_with_help(
        job.pos,
        format!(
            "`jobs.{}.image_build`: value `{value}` of `matrix.{name}` makes `{slug}` in `{template}`, which is not a valid image name: {problem}",
            job.name
        ),
        format!("change the value, or move `{{{{ matrix.{name} }}}}` within the tag (e.g. `py-{{{{ matrix.{name} }}}}`)"),
    );
}

/// No two combinations make the same name from the template: they would race
/// to build or push it, the last to finish winning.
fn distinct(r: &mut Reader, job: &Job, kind: Kind, template: &Template, combos: &[Env]) -> bool {
    let rendered: Vec<String> = combos
        .iter()
        .map(|c| {
            template
                .with_matrix(c)
                .map(|t| t.source)
                .unwrap_or_default()
        })
        .collect();
    for (i, name) in rendered.iter().enumerate() {
        let Some(j) = rendered[..i].iter().position(|other| other == name) else {
            continue;
        };
        let cell = |values: &Env| MatrixCell {
            job: job.name.clone(),
            values: values.clone(),
        };
        let variable = combos[0].first().map_or("NAME", |(n, _)| n.as_str());
        let (field, verb, example) = match kind {
            Kind::Local => (
                "tags",
                "tag the image",
                format!("app:{{{{ matrix.{variable} }}}}"),
            ),
            Kind::Pushed => (
                "push_tags",
                "push the tag",
                format!("{{{{ run.number }}}}-{{{{ matrix.{variable} }}}}"),
            ),
        };
        r.error_with_help(
            job.pos,
            format!(
                "combinations `{}` and `{}` of job `{}` would both {verb} `{name}` (`jobs.{}.image_build.{field}`): they run at once and the last to finish wins",
                cell(&combos[j]).title(),
                cell(&combos[i]).title(),
                job.name,
                job.name
            ),
            format!(
                "name the matrix's variables in each of `{field}`{}, e.g. `{field}: [\"{example}\"]`",
                if kind == Kind::Pushed { " (its default, the run number and short commit, is the same for every combination)" } else { "" },
            ),
        );
        return false;
    }
    true
}
