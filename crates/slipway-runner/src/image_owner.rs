//! Whose a local image is. Slipway never pulls, so a local tag is what every
//! later container job and `FROM` line of every project gets. On a server a
//! job therefore tags only names of its own project, never over an image
//! another project or a less protected branch built, and runs or builds from
//! only images of its own project or without Slipway labels (base images an
//! admin imported, which no job can overwrite because of the tag rule).
//! `slipway run` (no project) keeps free tags: it is the developer's own machine.

use std::collections::HashMap;

use crate::docker::Engine;

/// Label naming the project whose job built an image (or started a container).
pub const PROJECT_LABEL: &str = "slipway.project";
/// Label saying whether that job ran for a protected branch: `true`/`false`.
pub const PROTECTED_LABEL: &str = "slipway.protected";

/// The project and protection level a job acts for.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub project: &'a str,
    pub protected: bool,
    /// This server's registry (`HOST[:PORT]`), whose names the push rule guards.
    pub registry: Option<&'a str>,
}

impl Owner<'_> {
    /// A tag's repository is `PROJECT` or `PROJECT/…`, or (a name to push)
    /// `REGISTRY/REPO/PROJECT[/…]` on this server's registry, like the push rule.
    pub fn may_tag(&self, tag: &str) -> Result<(), String> {
        let repo = repository(tag);
        let under =
            |name: &str| name == self.project || name.starts_with(&format!("{}/", self.project));
        let pushed = self
            .registry
            .and_then(|host| repo.strip_prefix(&format!("{host}/")))
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, image)| under(image));
        if under(repo) || pushed {
            return Ok(());
        }
        let project = self.project;
        Err(format!(
            "project `{project}` tags images only under its own name ({project}:TAG or {project}/NAME:TAG), \
             not `{tag}`: every job on this machine runs local images by name, so a tag of another name \
             could replace another project's (or an admin's base) image; rename the tag in `image_build.tags`"
        ))
    }

    /// Refuses to replace an existing tag another project (or a less protected branch) built.
    pub async fn may_overwrite(&self, engine: &Engine, tag: &str) -> Result<(), String> {
        match engine.image_labels(tag).await? {
            Some(labels) => self.refuse_foreign(&labels, tag, "replace"),
            None => Ok(()),
        }
    }

    /// Refuses to run (or build `FROM`) an image another project or a less protected branch built.
    pub async fn may_use(&self, engine: &Engine, image: &str) -> Result<(), String> {
        match engine.image_labels(image).await? {
            Some(labels) => self.refuse_foreign(&labels, image, "use"),
            None => Ok(()),
        }
    }

    fn refuse_foreign(
        &self,
        labels: &HashMap<String, String>,
        image: &str,
        what: &str,
    ) -> Result<(), String> {
        if let Some(other) = labels.get(PROJECT_LABEL).filter(|p| *p != self.project) {
            return Err(format!(
                "project `{}` cannot {what} image `{image}`: a job of project `{other}` built it; \
                 use an image of this project or one without Slipway labels",
                self.project
            ));
        }
        let built_unprotected = labels.get(PROTECTED_LABEL).is_some_and(|p| p == "false");
        let built_protected = labels.get(PROTECTED_LABEL).is_some_and(|p| p == "true");
        if (what == "use" && self.protected && built_unprotected)
            || (what == "replace" && !self.protected && built_protected)
        {
            return Err(format!(
                "a job of an unprotected branch and a protected branch's image `{image}` do not mix \
                 (a protected branch's job cannot use an unprotected branch's image, nor can an \
                 unprotected branch's job replace a protected branch's); give the two different tags"
            ));
        }
        Ok(())
    }
}

/// `HOST/NAME:TAG@DIGEST` without its tag and digest.
fn repository(reference: &str) -> &str {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// The images a Dockerfile's `FROM` lines name, with `ARG` defaults (and the
/// build's arguments) substituted; earlier stages and `scratch` are not images.
pub fn base_images(dockerfile: &str, build_args: &[(String, String)]) -> Vec<String> {
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ARG") {
            for word in words {
                let (name, default) = word.split_once('=').unwrap_or((word, ""));
                let given = build_args
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone());
                args.entry(name.to_string()).or_insert_with(|| {
                    given.unwrap_or_else(|| default.trim_matches('"').to_string())
                });
            }
            continue;
        }
        if !instruction.eq_ignore_ascii_case("FROM") {
            continue;
        }
        let words: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
        let Some(image) = words.first().map(|w| substitute(w, &args)) else {
            continue;
        };
        if image != "scratch" && !stages.contains(&image.to_lowercase()) {
            images.push(image);
        }
        if let [_, as_, stage] = words[..]
            && as_.eq_ignore_ascii_case("AS")
        {
            stages.push(stage.to_lowercase());
        }
    }
    images
}

fn substitute(word: &str, args: &HashMap<String, String>) -> String {
    let mut out = word.to_string();
    for (name, value) in args {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: Owner<'static> = Owner {
        project: "demo",
        protected: true,
        registry: Some("127.0.0.1:5000"),
    };

    #[test]
    fn tags_only_under_the_project() {
        assert!(DEMO.may_tag("demo:1").is_ok());
        assert!(DEMO.may_tag("demo/api:latest").is_ok());
        assert!(DEMO.may_tag("127.0.0.1:5000/ci/demo:3").is_ok());
        assert!(DEMO.may_tag("slipway/busybox:latest").is_err());
        assert!(DEMO.may_tag("demo-other:1").is_err());
        assert!(DEMO.may_tag("ci/demo:1").is_err());
        assert!(DEMO.may_tag("other.io:5000/ci/demo:1").is_err());
    }

    #[test]
    fn from_lines_name_the_base_images() {
        let file = "ARG BASE=slipway/busybox:latest\nFROM ${BASE} AS build\nFROM --platform=linux/amd64 build\nFROM scratch\nFROM other/x:1 AS b\n";
        assert_eq!(
            base_images(file, &[]),
            ["slipway/busybox:latest", "other/x:1"]
        );
        let given = [("BASE".to_string(), "evil/x".to_string())];
        assert_eq!(base_images("ARG BASE=a\nFROM $BASE\n", &given), ["evil/x"]);
    }
}
