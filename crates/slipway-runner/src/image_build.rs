//! `image_build`: a Docker image from a Dockerfile in the workspace, through the
//! Engine API's classic builder, so the engine's layer cache is reused across runs.

use std::path::{Path, PathBuf};

use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion, TagImageOptionsBuilder};
use futures_util::StreamExt;
use globset::{GlobBuilder, GlobMatcher};
use tokio_util::sync::CancellationToken;

use crate::EventSender;
use crate::docker::Engine;
use crate::output::note;

#[derive(Debug)]
pub struct Build<'a> {
    pub job: &'a str,
    /// Build output can echo a secret a step wrote into the context.
    pub masker: &'a crate::mask::Masker,
    /// The build context directory (inside the workspace).
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: &'a str,
    /// Rendered tags; the first is built, the rest point at the same image.
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
}

/// Builds the image; returns its id.
pub async fn build(
    engine: &Engine,
    spec: Build<'_>,
    events: &EventSender,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let (context, dockerfile) = (spec.context.clone(), PathBuf::from(spec.dockerfile));
    let tar = tokio::task::spawn_blocking(move || context_tar(&context, &dockerfile))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "cannot pack the build context {}: {e}",
                spec.context.display()
            )
        })?;
    let first = spec.tags.first().ok_or("image_build has no tag")?;
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(spec.dockerfile)
        .t(first)
        .rm(true)
        .forcerm(true)
        .version(BuilderVersion::BuilderV1)
        .buildargs(&spec.build_args.iter().cloned().collect())
        .labels(&spec.labels.iter().cloned().collect())
        .build();
    let mut stream = engine
        .docker
        .build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut image_id = None;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = cancel.cancelled() => return Err("image build canceled".into()),
        };
        let Some(item) = item else { break };
        let info = item.map_err(|e| format!("image build failed: {e}"))?;
        if let Some(text) = info.stream {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                note(events, spec.job, spec.masker.mask_text(line)).await;
            }
        }
        if let Some(detail) = info.error_detail {
            return Err(format!(
                "image build failed: {}",
                spec.masker.mask_text(&detail.message.unwrap_or_default())
            ));
        }
        if let Some(aux) = info.aux.and_then(|a| a.id) {
            image_id = Some(aux);
        }
    }
    for extra in &spec.tags[1..] {
        tag(engine, first, extra).await?;
    }
    note(
        events,
        spec.job,
        format!("built image {}", spec.tags.join(", ")),
    )
    .await;
    Ok(image_id.unwrap_or_default())
}

pub(crate) async fn tag(engine: &Engine, image: &str, tag: &str) -> Result<(), String> {
    let (repo, version) = match tag.rsplit_once(':').filter(|(_, v)| !v.contains('/')) {
        Some((r, v)) => (r, v),
        None => (tag, "latest"),
    };
    let options = TagImageOptionsBuilder::default()
        .repo(repo)
        .tag(version)
        .build();
    engine
        .docker
        .tag_image(image, Some(options))
        .await
        .map_err(|e| format!("cannot tag {image} as {tag}: {e}"))
}

/// The context as a tar archive, without what `.dockerignore` excludes
/// (the same rules as the docker CLI: the last matching pattern wins, and the
/// Dockerfile and `.dockerignore` are always sent).
fn context_tar(context: &Path, dockerfile: &Path) -> std::io::Result<Vec<u8>> {
    let ignore = DockerIgnore::read(context)?;
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let walk = walkdir::WalkDir::new(context)
        .min_depth(1)
        .sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(std::io::Error::from)?;
        let rel = entry.path().strip_prefix(context).unwrap_or(entry.path());
        let always = rel == dockerfile || rel == Path::new(".dockerignore");
        if entry.file_type().is_dir() || (!always && ignore.excludes(rel)) {
            continue;
        }
        tar.append_path_with_name(entry.path(), rel)?;
    }
    tar.into_inner()
}

#[derive(Debug, Default)]
struct DockerIgnore {
    /// (pattern, excludes): `!pattern` lines re-include.
    rules: Vec<(GlobMatcher, bool)>,
}

impl DockerIgnore {
    fn read(context: &Path) -> std::io::Result<DockerIgnore> {
        let text = match std::fs::read_to_string(context.join(".dockerignore")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerIgnore::default());
            }
            Err(e) => return Err(e),
        };
        let mut rules = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (pattern, excludes) = match line.strip_prefix('!') {
                Some(p) => (p.trim(), false),
                None => (line, true),
            };
            let pattern = pattern
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/');
            if let Ok(glob) = GlobBuilder::new(pattern).literal_separator(true).build() {
                rules.push((glob.compile_matcher(), excludes));
            }
        }
        Ok(DockerIgnore { rules })
    }

    /// A pattern that matches a file or any directory above it decides for the file.
    fn excludes(&self, path: &Path) -> bool {
        let mut excluded = false;
        for (glob, excludes) in &self.rules {
            if path
                .ancestors()
                .any(|p| !p.as_os_str().is_empty() && glob.is_match(p))
            {
                excluded = *excludes;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_last_match_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".dockerignore"), "*\n!target/release/app\n")
            .expect("write");
        let ignore = DockerIgnore::read(dir.path()).expect("read");
        assert!(ignore.excludes(Path::new("src/main.rs")));
        assert!(ignore.excludes(Path::new("target/debug/app")));
        assert!(!ignore.excludes(Path::new("target/release/app")));
    }
}
